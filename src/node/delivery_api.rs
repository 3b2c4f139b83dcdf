//! The node's side of the admin endpoint's delivery API (`POST /publish`,
//! `POST /queues`, `GET /subscribe`).

use tokio::sync::{broadcast, mpsc};

use super::actor::Request;
use super::publish::publish_via;
use crate::http::delivery::{ApiFuture, DeliveryApi, PublishAnswer};
use crate::proto::core::{Command, Delivery, PublishOptions};
use crate::proto::delivery::Guarantee;

/// Hands the admin endpoint's delivery requests to the actor.
pub(super) struct NodeDelivery {
    requests: mpsc::Sender<Request>,
    /// Weak, so that subscription streams end when the node stops.
    deliveries: broadcast::WeakSender<Delivery>,
}

impl NodeDelivery {
    pub(super) fn new(
        requests: mpsc::Sender<Request>,
        deliveries: &broadcast::Sender<Delivery>,
    ) -> Self {
        NodeDelivery {
            requests,
            deliveries: deliveries.downgrade(),
        }
    }
}

impl DeliveryApi for NodeDelivery {
    fn publish(
        &self,
        topic: String,
        guarantee: Guarantee,
        payload: Vec<u8>,
        options: PublishOptions,
    ) -> ApiFuture<Result<PublishAnswer, String>> {
        let requests = self.requests.clone();
        Box::pin(async move {
            let command = Command::PublishWith {
                topic,
                guarantee,
                payload,
                options,
            };
            let p = publish_via(&requests, command)
                .await
                .map_err(|e| e.to_string())?;
            Ok(PublishAnswer {
                origin: p.key.origin,
                id: p.key.id,
                dests: p.dests,
            })
        })
    }

    fn create_queue(&self, name: String) -> ApiFuture<bool> {
        let requests = self.requests.clone();
        Box::pin(async move {
            requests
                .send(Request::Command(Command::CreateQueue(name)))
                .await
                .is_ok()
        })
    }

    fn subscribe(&self, pattern: String) -> ApiFuture<Option<broadcast::Receiver<Delivery>>> {
        let requests = self.requests.clone();
        // Before the subscription is in place, so nothing after it is missed.
        let rx = self.deliveries.upgrade().map(|tx| tx.subscribe());
        Box::pin(async move {
            let rx = rx?;
            requests
                .send(Request::Command(Command::Subscribe(pattern)))
                .await
                .ok()?;
            Some(rx)
        })
    }
}

//! Quorum thresholds as integer arithmetic: `u64` weights compared in `u128`,
//! so no product can wrap and no float rounding can move a boundary.

/// A quorum rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Threshold {
    /// More than half of the total weight: `2·yes > total`.
    Global,
    /// More than two thirds of the total weight: `3·yes > 2·total`.
    Byzantine,
}

/// Why a quorum question cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// The total weight is zero, so no quorum is defined.
    #[error("total weight is zero")]
    ZeroTotal,
    /// More weight was counted than exists: a bookkeeping bug or a forged tally.
    #[error("counted weight {counted} exceeds total weight {total}")]
    CountExceedsTotal {
        /// Weight counted.
        counted: u64,
        /// Total weight.
        total: u64,
    },
    /// A sum of weights does not fit in u64.
    #[error("weight sum overflows u64")]
    Overflow,
}

impl Threshold {
    /// Whether `yes` out of `total` meets this threshold.
    pub fn is_met(self, yes: u64, total: u64) -> Result<bool, QuorumError> {
        if total == 0 {
            return Err(QuorumError::ZeroTotal);
        }
        if yes > total {
            return Err(QuorumError::CountExceedsTotal {
                counted: yes,
                total,
            });
        }
        let (yes, total) = (u128::from(yes), u128::from(total));
        Ok(match self {
            Threshold::Global => 2 * yes > total,
            Threshold::Byzantine => 3 * yes > 2 * total,
        })
    }

    /// The smallest weight that meets this threshold out of `total`.
    pub fn min_weight(self, total: u64) -> Result<u64, QuorumError> {
        if total == 0 {
            return Err(QuorumError::ZeroTotal);
        }
        let t = u128::from(total);
        let min = match self {
            Threshold::Global => t / 2 + 1,
            Threshold::Byzantine => 2 * t / 3 + 1,
        };
        // min <= total for every total >= 1, so it fits in u64.
        u64::try_from(min).map_err(|_| QuorumError::Overflow)
    }

    /// The most weight that may be faulty while two quorums of this kind still
    /// intersect in an honest member: Byzantine tolerates `f < total/3`, and
    /// Global tolerates none (it only survives crashes).
    pub fn tolerated_faulty(self, total: u64) -> u64 {
        match self {
            Threshold::Global => 0,
            Threshold::Byzantine => (total - 1) / 3,
        }
    }
}

/// Sums weights with overflow checking.
pub fn checked_sum<I: IntoIterator<Item = u64>>(weights: I) -> Result<u64, QuorumError> {
    weights.into_iter().try_fold(0u64, |acc, w| {
        acc.checked_add(w).ok_or(QuorumError::Overflow)
    })
}

//! Pattern matching: AMQP topic semantics, `*` = exactly one segment and
//! `#` = zero or more. Iterative with one backtrack point per `#` run, so
//! the cost is O(pattern × name) segments at worst, never exponential.

use super::name::{Pattern, QueueName, Segment};

/// Whether `pattern` matches `name`.
pub fn matches(pattern: &Pattern, name: &QueueName) -> bool {
    let pat = pattern.segments();
    let segs: Vec<&str> = name.segments().collect();
    // Classic glob matching with the last `#` as the only backtrack point:
    // a later `#` subsumes any choice made for an earlier one.
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < segs.len() {
        match pat.get(p) {
            Some(Segment::Any) => {
                star = Some((p, s));
                p += 1;
            }
            Some(Segment::One) => {
                p += 1;
                s += 1;
            }
            Some(Segment::Literal(l)) if l == segs[s] => {
                p += 1;
                s += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|seg| *seg == Segment::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, n: &str) -> bool {
        matches(&Pattern::new(p).unwrap(), &QueueName::new(n).unwrap())
    }

    #[test]
    fn amqp_examples() {
        assert!(m("a.b.c", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(m("a.*.c", "a.x.c"));
        assert!(!m("a.*.c", "a.c"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#.c", "c"));
        assert!(m("#.c", "a.b.c"));
        assert!(!m("#.c", "a.b"));
        assert!(m("a.#.c", "a.c"));
        assert!(m("a.#.c", "a.x.y.c"));
        assert!(m("#.b.#", "b"));
        assert!(m("#.#", "x"));
        assert!(m("*.#", "x"));
        assert!(!m("*.*.#", "x"));
        assert!(m("#.*.c.#", "a.c.c"));
    }

    /// Reference matcher: direct recursion on the definition.
    fn reference(p: &[Segment], n: &[&str]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((Segment::Any, rest)) => (0..=n.len()).any(|k| reference(rest, &n[k..])),
            Some((Segment::One, rest)) => !n.is_empty() && reference(rest, &n[1..]),
            Some((Segment::Literal(l), rest)) => {
                n.first().is_some_and(|s| s == l) && reference(rest, &n[1..])
            }
        }
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..7)
            .prop_map(|v| v.join("."))
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "#"]), 1..7)
            .prop_map(|v| v.join("."))
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in pattern_strategy(), n in name_strategy()) {
            let pat = Pattern::new(&p).unwrap();
            let name = QueueName::new(&n).unwrap();
            let segs: Vec<&str> = name.segments().collect();
            prop_assert_eq!(matches(&pat, &name), reference(pat.segments(), &segs));
        }

        #[test]
        fn hash_matches_everything(n in name_strategy()) {
            prop_assert!(m("#", &n));
        }

        #[test]
        fn literal_patterns_match_only_themselves(p in name_strategy(), n in name_strategy()) {
            prop_assert_eq!(m(&p, &n), p == n);
            let name = QueueName::new(&n).unwrap();
            prop_assert!(Pattern::exact(&name).matches(&name));
        }
    }
}

//! Whether a regeneration may keep the session it stored: a pure function of
//! its lineage's events, in the order the server applied them.

use mongodb::bson::Bson;

/// What became of one ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Ended, and claimed by no regeneration: a logout or a revocation, or
    /// a regeneration whose create has not come yet.
    Open = 0,
    /// The first half of a regeneration whose create stored the successor.
    Claimed = 1,
    /// The first half of a regeneration that gave way: it stored nothing.
    Yielded = 2,
}

/// One ending of a lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) token: String,
    pub(crate) status: Status,
    pub(crate) successor: Option<String>,
}

impl Event {
    pub(crate) fn parse(value: &Bson) -> Self {
        let document = value.as_document();
        let text = |name: &str| {
            document
                .and_then(|d| d.get_str(name).ok())
                .map(str::to_string)
        };
        let status = match document.and_then(|d| d.get_i32("s").ok()) {
            Some(1) => Status::Claimed,
            Some(2) => Status::Yielded,
            _ => Status::Open,
        };
        Self {
            token: text("t").unwrap_or_default(),
            status,
            successor: text("b"),
        }
    }
}

/// What a regeneration does with the session it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep it: every other ending of the lineage is a regeneration that
    /// came before this one's and gives way to it, or gave way already.
    Proceed,
    /// Remove it: the lineage was ended after this regeneration's own
    /// ending (a logout, a revocation, or a later regeneration, which
    /// supersedes it), or its own ending is not on record.
    Yield,
    /// Ask again shortly: an earlier ending is still open, and whether it
    /// was a logout (this one must yield) or a regeneration about to claim
    /// it (which will yield to this one) only its request can tell.
    Wait,
}

/// Decides for the regeneration whose own ending is `mine`.
///
/// Every ending after `mine` that is open or claimed wins: a logout that
/// came second ends the lineage, and of two regenerations the later one is
/// kept. An open ending before `mine` is either a logout (then this one
/// must yield) or a regeneration that has not claimed yet (which, when it
/// does, will see `mine` after it and yield): only waiting tells.
pub(crate) fn decide(events: &[Event], mine: &str) -> Verdict {
    let Some(at) = events.iter().position(|e| e.token == mine) else {
        return Verdict::Yield;
    };
    if events[at + 1..].iter().any(|e| e.status != Status::Yielded) {
        return Verdict::Yield;
    }
    if events[..at].iter().any(|e| e.status == Status::Open) {
        return Verdict::Wait;
    }
    Verdict::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(spec: &[(&str, Status)]) -> Vec<Event> {
        spec.iter()
            .map(|(t, s)| Event {
                token: (*t).to_string(),
                status: *s,
                successor: None,
            })
            .collect()
    }

    use Status::{Claimed as C, Open as O, Yielded as Y};

    #[test]
    fn alone_a_regeneration_proceeds() {
        assert_eq!(decide(&events(&[("me", C)]), "me"), Verdict::Proceed);
        // Earlier regenerations of the lineage, settled either way.
        let earlier = events(&[("a", C), ("b", Y), ("me", C)]);
        assert_eq!(decide(&earlier, "me"), Verdict::Proceed);
    }

    #[test]
    fn an_ending_after_mine_wins() {
        for later in [O, C] {
            let e = events(&[("me", C), ("x", later)]);
            assert_eq!(decide(&e, "me"), Verdict::Yield, "{later:?}");
        }
        // One that gave way does not count.
        let e = events(&[("me", C), ("x", Y)]);
        assert_eq!(decide(&e, "me"), Verdict::Proceed);
    }

    #[test]
    fn an_open_ending_before_mine_is_waited_for() {
        let e = events(&[("x", O), ("me", C)]);
        assert_eq!(decide(&e, "me"), Verdict::Wait);
    }

    #[test]
    fn without_my_own_ending_on_record_nothing_is_kept() {
        assert_eq!(decide(&events(&[("x", C)]), "me"), Verdict::Yield);
        assert_eq!(decide(&[], "me"), Verdict::Yield);
    }

    /// Two regenerations of one session, their endings `a` then `b`: in
    /// every state the record can be in when each decides, exactly one of
    /// them keeps its session once both have settled (waiting ends when
    /// the other settles).
    #[test]
    fn of_two_regenerations_exactly_one_is_kept() {
        // `a` decides seeing `b` open or claimed: it yields, and `b`, seeing
        // `a` claimed or yielded, proceeds.
        for b in [O, C] {
            assert_eq!(decide(&events(&[("a", C), ("b", b)]), "a"), Verdict::Yield);
        }
        for a in [C, Y] {
            assert_eq!(
                decide(&events(&[("a", a), ("b", C)]), "b"),
                Verdict::Proceed
            );
        }
        // `b` decides first while `a` is open: it waits for `a`.
        assert_eq!(decide(&events(&[("a", O), ("b", C)]), "b"), Verdict::Wait);
    }
}

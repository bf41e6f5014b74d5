//! Store events (connect-mongo's `create`, `touch`, `update`, `set`,
//! `destroy`), as a typed subscription.
//!
//! Events go through a bounded broadcast channel: sending never waits. When
//! nobody subscribes, nothing is even built; a listener that falls behind
//! misses the oldest events (its next `recv` reports how many) instead of
//! slowing requests down.

use tokio::sync::broadcast;

use crate::id::SessionId;

const CAPACITY: usize = 1024;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A new session was stored.
    Create,
    /// An unchanged session's expiry was moved forward.
    Touch,
    /// A session's values were changed.
    Update,
    /// A session was created or updated (sent after `Create` and after
    /// `Update`, for compatibility with connect-mongo).
    Set,
    /// A session was deleted.
    Destroy,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// What happened.
    pub kind: EventKind,
    /// To which session.
    pub id: SessionId,
}

/// Receives store events; see [`MongoSessionStore::subscribe`](crate::MongoSessionStore::subscribe).
pub type EventReceiver = broadcast::Receiver<SessionEvent>;

#[derive(Debug)]
pub(crate) struct Events(broadcast::Sender<SessionEvent>);

impl Default for Events {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Events {
    pub(crate) fn subscribe(&self) -> EventReceiver {
        self.0.subscribe()
    }

    pub(crate) fn emit(&self, id: &str, kinds: &[EventKind]) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let id = SessionId::new(id);
        for &kind in kinds {
            // Err only means every receiver went away meanwhile.
            let _ = self.0.send(SessionEvent {
                kind,
                id: id.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_events_are_redacted_when_printed() {
        let event = SessionEvent {
            kind: EventKind::Create,
            id: SessionId::new("secret-session-id"),
        };
        assert!(!format!("{event:?}").contains("secret"));
        assert!(!event.id.to_string().contains("secret"));
        assert_eq!(event.id.expose(), "secret-session-id");
    }

    #[tokio::test]
    async fn a_slow_listener_never_blocks_the_sender() {
        let events = Events::default();
        let mut slow = events.subscribe();
        for _ in 0..CAPACITY * 3 {
            events.emit("x", &[EventKind::Touch]);
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        // Without listeners, emitting is a no-op.
        drop(slow);
        events.emit("x", &[EventKind::Destroy]);
    }
}

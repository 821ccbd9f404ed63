//! Cross-process task announcements: the receiving end a backend hands out
//! from [`crate::Store::task_announcements`], and the sending end it keeps.

use tokio::sync::mpsc;

/// Announcements that tasks became claimable, made by any process sharing
/// the database (see [`crate::Store::announce_tasks`]).
///
/// Each [`TaskAnnouncements::next`] returns once per announcement received,
/// with coalescing: announcements arriving while one is still waiting to be
/// received count as that one (the buffer holds one). The backend also
/// yields an item whenever announcements may have been missed (after it
/// reconnected to the database), so a receiver that re-checks the queue
/// on every item never sleeps through claimable tasks for long.
///
/// An item says "look again", nothing more: it carries no task, and it
/// may be spurious (the tasks may already be claimed by someone else).
///
/// `next` returns `None` once the source ended for good (the store was
/// closed); a receiver should then stop waiting on it. Dropping the value
/// stops the backend's listener.
#[derive(Debug)]
pub struct TaskAnnouncements {
    rx: mpsc::Receiver<()>,
}

/// The sending end of [`TaskAnnouncements`], for backends.
#[derive(Debug, Clone)]
pub struct AnnouncementSender {
    tx: mpsc::Sender<()>,
}

impl TaskAnnouncements {
    /// A connected pair: the backend keeps the sender, the caller gets the
    /// receiver.
    pub fn channel() -> (AnnouncementSender, TaskAnnouncements) {
        let (tx, rx) = mpsc::channel(1);
        (AnnouncementSender { tx }, TaskAnnouncements { rx })
    }

    /// Waits for the next announcement; `None` once the source ended.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await
    }

    /// An announcement already received and not yet taken, without
    /// waiting: `Some(())` if there is one.
    pub fn try_next(&mut self) -> Option<()> {
        self.rx.try_recv().ok()
    }
}

impl AnnouncementSender {
    /// Passes one announcement on, coalescing it with one still waiting to
    /// be received. Returns `false` once the receiver was dropped (the
    /// backend should then stop listening).
    pub fn announce(&self) -> bool {
        match self.tx.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => true,
            Err(mpsc::error::TrySendError::Closed(())) => false,
        }
    }

    /// Resolves when the receiver was dropped.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Whether the receiver was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

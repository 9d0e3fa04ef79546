//! Notices: the one-line warnings a run raises while it goes (a spend alert crossed, a batch
//! cancelled, the per-request export stopped). Layers below the workflows never print; they send
//! a notice, and the workflow that started the run decides where it goes (the binary prints it
//! to stderr; a library user may collect it or drop it, the default).

use std::fmt;
use std::sync::Arc;

/// Delivers one notice.
type Deliver = dyn Fn(&str) + Send + Sync;

/// Where a run's notices go: nowhere by default.
#[derive(Clone, Default)]
pub struct Notices(Option<Arc<Deliver>>);

impl Notices {
    /// Notices handed to `deliver`, one line (or a few, for a command to copy) at a time.
    pub fn to(deliver: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Notices(Some(Arc::new(deliver)))
    }

    /// Raises one notice.
    pub fn send(&self, notice: &str) {
        if let Some(deliver) = &self.0 {
            deliver(notice);
        }
    }
}

impl fmt::Debug for Notices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Notices(delivered)"
        } else {
            "Notices(dropped)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn notices_reach_their_sink_and_are_dropped_without_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let notices = Notices::to(move |line| sink.lock().unwrap().push(line.to_string()));
        notices.clone().send("spend passed 50%");
        Notices::default().send("nobody hears this");
        assert_eq!(*seen.lock().unwrap(), ["spend passed 50%"]);
    }
}

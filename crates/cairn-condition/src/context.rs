//! What a condition reads at run time: the [`EvalContext`] trait the engine implements, and [`MapContext`], a
//! simple in-memory implementation for tests, the simulator and ad-hoc evaluation.

use serde_json::{Map, Value as Json};

/// Everything a condition can read. Time always comes from the caller: a condition never reads a clock.
pub trait EvalContext {
    /// "Now", in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// The profile's attributes (traits).
    fn profile(&self) -> Option<&Map<String, Json>>;
    /// The triggering or awaited event: the Segment message JSON (`event`/`name`, `type`, `properties`,
    /// `context`, `timestamp`, ...).
    fn event(&self) -> Option<&Json>;
    /// The enrollment's data: `entered_at`, `trigger`, `steps.<step_id>.*`, ...
    fn journey(&self) -> Option<&Json>;
    /// How many events with this name the profile has, all time (`since_ms` = `None`) or with a timestamp at or
    /// after `since_ms`.
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64;
    /// The first and last timestamps of events with this name, if any.
    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>);
    /// Timestamps (ascending) of the profile's recent events with this name, at least as far back as the
    /// longest aggregate window of the conditions evaluated ([`crate::References::longest_window_ms`]).
    fn recent_event_times(&self, name: &str) -> &[i64];
}

/// An in-memory [`EvalContext`]: JSON values and a list of `(event name, timestamp ms)`.
#[derive(Debug, Clone, Default)]
pub struct MapContext {
    pub now_ms: i64,
    pub profile: Option<Map<String, Json>>,
    pub event: Option<Json>,
    pub journey: Option<Json>,
    /// Event history per name, timestamps ascending.
    history: std::collections::BTreeMap<String, Vec<i64>>,
}

impl MapContext {
    /// An empty context at `now_ms`.
    pub fn new(now_ms: i64) -> MapContext {
        MapContext {
            now_ms,
            ..MapContext::default()
        }
    }

    /// Sets the profile from a JSON value (anything but an object means no profile).
    pub fn with_profile(mut self, profile: Json) -> MapContext {
        self.profile = match profile {
            Json::Object(map) => Some(map),
            _ => None,
        };
        self
    }

    pub fn with_event(mut self, event: Json) -> MapContext {
        self.event = Some(event);
        self
    }

    pub fn with_journey(mut self, journey: Json) -> MapContext {
        self.journey = Some(journey);
        self
    }

    /// Adds events to the profile's history.
    pub fn with_history<'n>(
        mut self,
        events: impl IntoIterator<Item = (&'n str, i64)>,
    ) -> MapContext {
        for (name, timestamp_ms) in events {
            self.record_event(name, timestamp_ms);
        }
        self
    }

    /// Adds one event to the profile's history.
    pub fn record_event(&mut self, name: &str, timestamp_ms: i64) {
        let times = self.history.entry(name.to_owned()).or_default();
        let position = times.partition_point(|&existing| existing <= timestamp_ms);
        times.insert(position, timestamp_ms);
    }

    /// The same data at another instant.
    pub fn at(&self, now_ms: i64) -> MapContext {
        MapContext {
            now_ms,
            ..self.clone()
        }
    }
}

impl EvalContext for MapContext {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn profile(&self) -> Option<&Map<String, Json>> {
        self.profile.as_ref()
    }

    fn event(&self) -> Option<&Json> {
        self.event.as_ref()
    }

    fn journey(&self) -> Option<&Json> {
        self.journey.as_ref()
    }

    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        let times = self.recent_event_times(name);
        let counted = match since_ms {
            None => times.len(),
            Some(since) => times.len() - times.partition_point(|&time| time < since),
        };
        counted as u64
    }

    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        let times = self.recent_event_times(name);
        (times.first().copied(), times.last().copied())
    }

    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.history.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Another context seen at a different "now" (used to evaluate a condition at a future instant).
pub(crate) struct AtTime<'a> {
    pub(crate) inner: &'a dyn EvalContext,
    pub(crate) now_ms: i64,
}

impl EvalContext for AtTime<'_> {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn profile(&self) -> Option<&Map<String, Json>> {
        self.inner.profile()
    }
    fn event(&self) -> Option<&Json> {
        self.inner.event()
    }
    fn journey(&self) -> Option<&Json> {
        self.inner.journey()
    }
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        self.inner.event_count(name, since_ms)
    }
    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        self.inner.event_times(name)
    }
    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.inner.recent_event_times(name)
    }
}

//! A subscriber that keeps every span (name, parent, fields as finally
//! recorded) and every event's fields (with its `target` and `level`), for
//! the tests to inspect.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
};

use tracing::{
    field::{Field, Visit},
    span, Event, Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, registry::LookupSpan, Layer, Registry};

/// A span as the store left it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub name: String,
    /// The enclosing spans' names, innermost first.
    pub ancestors: Vec<String>,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Records {
    spans: Vec<Captured>,
    events: Vec<BTreeMap<String, String>>,
}

/// What the subscriber saw, shared with the layer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Records>>);

/// Where a span's record lives in [`Records::spans`] (span ids are reused).
struct Index(usize);

impl Capture {
    /// Captures everything this thread traces until the guard drops. Tests
    /// run on a current-thread runtime, so the store's futures are polled
    /// here.
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let subscriber = Registry::default().with(capture.clone());
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// The store's spans, in the order they opened.
    pub fn store_spans(&self) -> Vec<Captured> {
        let records = self.0.lock().unwrap();
        records
            .spans
            .iter()
            .filter(|s| s.name.starts_with("mongodb_session_store."))
            .cloned()
            .collect()
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        let mut records = self.0.lock().unwrap();
        records.spans.clear();
        records.events.clear();
    }

    /// Panics if any span field or event field captured so far holds `raw`.
    pub fn assert_never_mentions(&self, raw: &str) {
        let records = self.0.lock().unwrap();
        let spans = records.spans.iter().map(|s| &s.fields);
        for fields in spans.chain(records.events.iter()) {
            for (name, value) in fields {
                assert!(!value.contains(raw), "{name} = {value:?} holds a raw id");
            }
        }
    }

    /// How many events were captured (so a test can tell it saw some).
    pub fn event_count(&self) -> usize {
        self.0.lock().unwrap().events.len()
    }

    /// The fields of every event of `target`, with its `level`, in order.
    pub fn events(&self, target: &str) -> Vec<BTreeMap<String, String>> {
        let records = self.0.lock().unwrap();
        let of_target = records.events.iter().filter(|e| e["target"] == target);
        of_target.cloned().collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is registered");
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut records = self.0.lock().unwrap();
        records.spans.push(Captured {
            name: span.name().to_string(),
            ancestors: span.scope().skip(1).map(|s| s.name().to_string()).collect(),
            fields,
        });
        span.extensions_mut().insert(Index(records.spans.len() - 1));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is registered");
        let extensions = span.extensions();
        let Some(Index(at)) = extensions.get::<Index>() else {
            return;
        };
        let mut records = self.0.lock().unwrap();
        values.record(&mut Fields(&mut records.spans[*at].fields));
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        let metadata = event.metadata();
        fields.insert("target".into(), metadata.target().to_string());
        fields.insert("level".into(), metadata.level().to_string());
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().events.push(fields);
    }
}

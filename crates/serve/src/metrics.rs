//! `GET /metrics`: requests, errors by kind, request latency, batch sizes and queued requests,
//! per model, in the Prometheus (OpenMetrics) text format.

use crate::error::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// Empty for a model that is not served (clients choose those names: they must not grow
    /// the label set).
    model: String,
    kind: String,
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    requests: Family<ModelLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<ModelLabel, Histogram, fn() -> Histogram>,
    batch_size: Family<ModelLabel, Histogram, fn() -> Histogram>,
    queued: Family<ModelLabel, Gauge>,
}

/// The metrics of one model, looked up once.
#[derive(Clone)]
pub struct ModelMetrics {
    pub requests: Counter,
    /// Seconds from the request's arrival to its answer, for answered infer requests.
    pub latency: Histogram,
    /// Examples per kernel call.
    pub batch_size: Histogram,
    /// Requests in the model's queue, not yet taken by its batching thread.
    pub queued: Gauge,
}

fn latency_buckets() -> Histogram {
    // 25 us to 0.8 s.
    Histogram::new(exponential_buckets(25e-6, 2.0, 16))
}

fn batch_buckets() -> Histogram {
    // 1 to 1024 examples.
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ticket");
        let requests = Family::<ModelLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::new_with_constructor(latency_buckets as fn() -> Histogram);
        let batch_size = Family::new_with_constructor(batch_buckets as fn() -> Histogram);
        let queued = Family::<ModelLabel, Gauge>::default();
        registry.register("infer_requests", "Infer requests received", requests.clone());
        registry.register(
            "request_errors",
            "Requests answered with an error, by kind",
            errors.clone(),
        );
        registry.register_with_unit(
            "infer_request_duration",
            "Time from receiving an infer request to its answer",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register("batch_size", "Examples per kernel call", batch_size.clone());
        registry.register(
            "queued_requests",
            "Infer requests waiting in the model's queue",
            queued.clone(),
        );
        Metrics { registry, requests, errors, latency, batch_size, queued }
    }

    /// The handles of `model`'s metrics (which then appear in the output, at zero).
    pub fn model(&self, model: &str) -> ModelMetrics {
        let label = ModelLabel { model: model.to_string() };
        ModelMetrics {
            requests: self.requests.get_or_create(&label).clone(),
            latency: self.latency.get_or_create(&label).clone(),
            batch_size: self.batch_size.get_or_create(&label).clone(),
            queued: self.queued.get_or_create(&label).clone(),
        }
    }

    /// Counts an error answer; `model` is `None` for names that are not served.
    pub fn error(&self, model: Option<&str>, kind: ErrorKind) {
        let labels =
            ErrorLabels { model: model.unwrap_or_default().to_string(), kind: kind.label().into() };
        self.errors.get_or_create(&labels).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

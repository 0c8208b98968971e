//! The HTTP side: the Open Inference Protocol's endpoints on axum, each infer request parsed
//! here and handed to its model's batching thread, and a graceful shutdown that answers every
//! request in flight before it returns.

use crate::awake::KeepAwake;
use crate::batcher::{BatchPolicy, Batcher, SubmitError};
use crate::connections::LimitedListener;
use crate::error::{Error, ErrorKind, RequestError, Result};
use crate::metrics::{self, Metrics, ModelMetrics};
use crate::models::NamedModel;
use crate::protocol::{self, HEADER_LENGTH};
use crate::signature::{Signature, VERSION};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::Listener;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server listens and batches.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub policy: BatchPolicy,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body: usize,
    /// Most connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// How long a task keeps an async worker polling the sockets after each request (zero:
    /// never; see [`crate::awake`]). Worth it on a runtime of one worker only: with more, an
    /// idle one sleeps in the I/O driver and takes the next request's wake-up anyway.
    pub keep_awake: Duration,
    /// Longest wait for the requests in flight once shutdown began (a client that never
    /// finishes sending must not hold the server forever).
    pub drain_timeout: Duration,
}

/// One served model: its signature, the handle of its batching thread and its metrics.
struct Served {
    signature: Signature,
    batcher: Batcher,
    metrics: ModelMetrics,
}

/// What every handler shares.
struct App {
    models: BTreeMap<String, Served>,
    metrics: Metrics,
    policy: BatchPolicy,
    max_body: usize,
    /// Set once shutdown has begun: `/v2/health/ready` then answers 503.
    draining: AtomicBool,
    /// Keeps a worker polling the sockets for `keep_awake` around lone requests.
    awake: KeepAwake,
}

/// A bound server, its models loaded and their batching threads running.
pub struct Server {
    listener: LimitedListener,
    app: Arc<App>,
    workers: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Server {
    /// Starts a batching thread per model and binds `config.addr` (port 0: any free port).
    pub async fn bind(config: &Config, models: Vec<NamedModel>) -> Result<Server> {
        if config.policy.max_batch == 0 || config.policy.queue_capacity == 0 {
            return Err(Error::Config("--max-batch and --max-queue must be at least 1".into()));
        }
        let metrics = Metrics::new();
        let mut served = BTreeMap::new();
        let mut workers = Vec::new();
        for NamedModel { name, model, .. } in models {
            let signature = Signature::of(&model);
            let model_metrics = metrics.model(&name);
            let (batcher, worker) =
                Batcher::spawn(&name, model, config.policy, model_metrics.clone())
                    .map_err(|e| Error::io(format!("starting the thread of model {name}"), e))?;
            workers.push(worker);
            served.insert(name, Served { signature, batcher, metrics: model_metrics });
        }
        if config.max_connections == 0 {
            return Err(Error::Config("--max-connections must be at least 1".into()));
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::io(format!("binding {}", config.addr), e))?;
        let listener = LimitedListener::new(listener, config.max_connections);
        let app = App {
            models: served,
            metrics,
            policy: config.policy,
            max_body: config.max_body,
            draining: AtomicBool::new(false),
            awake: KeepAwake::new(config.keep_awake),
        };
        Ok(Server { listener, app: Arc::new(app), workers, drain_timeout: config.drain_timeout })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Listener::local_addr(&self.listener).map_err(|e| Error::io("reading the bound address", e))
    }

    /// The names of the served models, sorted.
    pub fn model_names(&self) -> Vec<String> {
        self.app.models.keys().cloned().collect()
    }

    /// Serves until `shutdown` completes, then stops accepting connections, answers the
    /// requests in flight and stops the batching threads.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server { listener, app, workers, drain_timeout } = self;
        let router = routes(app.clone());
        let spinner = app.clone();
        let spinning = tokio::spawn(async move { spinner.awake.run().await });
        let flag = app.clone();
        let began = Arc::new(tokio::sync::Notify::new());
        let begin = began.clone();
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            flag.draining.store(true, Ordering::Release);
            begin.notify_one();
        });
        let drained = tokio::select! {
            served = serve => {
                served.map_err(|e| Error::io("serving", e))?;
                true
            }
            () = async {
                began.notified().await;
                tokio::time::sleep(drain_timeout).await;
            } => false,
        };
        // The spinning task holds the app too: it must be gone before the app is unwrapped.
        spinning.abort();
        let _ = spinning.await;
        if !drained {
            return Err(Error::Unclean(format!(
                "requests still in flight {:?} after shutdown began; stopped without them",
                drain_timeout
            )));
        }
        // Every connection is closed: dropping the last handles ends the batching threads.
        if Arc::try_unwrap(app).is_ok() {
            let joined =
                tokio::task::spawn_blocking(move || workers.into_iter().all(|w| w.join().is_ok()));
            if !joined.await.unwrap_or(false) {
                return Err(Error::Unclean("a model's batching thread panicked".into()));
            }
        }
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn routes(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/metrics", get(metrics_text));
    // Every model endpoint with and without its version.
    for model in ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"] {
        router = router
            .route(model, get(model_metadata))
            .route(&format!("{model}/ready"), get(model_ready))
            .route(&format!("{model}/config"), get(model_config))
            .route(&format!("{model}/infer"), post(infer));
    }
    router
        .fallback(unknown_endpoint)
        .layer(axum::middleware::from_fn_with_state(app.clone(), keep_awake))
        .with_state(app)
}

/// Counts each request as served, for the spinning worker (see [`crate::awake`]).
async fn keep_awake(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let _serving = app.awake.serving();
    next.run(request).await
}

type Params = Path<HashMap<String, String>>;

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, json!({ "error": self.message }))
    }
}

impl App {
    /// The model a path names (with its version, if any), or the 404 answer.
    fn model(&self, params: &HashMap<String, String>) -> Result<(&str, &Served), RequestError> {
        let name = params.get("name").map(String::as_str).unwrap_or_default();
        let unknown = || {
            let served: Vec<_> = self.models.keys().map(String::as_str).collect();
            RequestError::new(
                ErrorKind::UnknownModel,
                format!("unknown model '{name}'; served: {}", served.join(", ")),
            )
        };
        let (key, served) = self.models.get_key_value(name).ok_or_else(unknown)?;
        match params.get("version") {
            Some(v) if v != VERSION => Err(RequestError::new(
                ErrorKind::UnknownModel,
                format!("model '{name}' has no version '{v}'; it has version {VERSION}"),
            )),
            _ => Ok((key.as_str(), served)),
        }
    }

    /// Counts `error` against `model` and turns it into its answer.
    fn fail(&self, model: Option<&str>, error: RequestError) -> Response {
        self.metrics.error(model, error.kind);
        error.into_response()
    }
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "name": "ticket",
            "version": env!("CARGO_PKG_VERSION"),
            "extensions": ["binary_tensor_data"],
        }),
    )
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(app): State<Arc<App>>) -> StatusCode {
    if app.draining.load(Ordering::Acquire) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn model_metadata(State(app): State<Arc<App>>, Path(params): Params) -> Response {
    match app.model(&params) {
        Ok((name, served)) => json_response(StatusCode::OK, served.signature.metadata(name)),
        Err(e) => app.fail(None, e),
    }
}

async fn model_ready(State(app): State<Arc<App>>, Path(params): Params) -> Response {
    match app.model(&params) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => app.fail(None, e),
    }
}

async fn model_config(State(app): State<Arc<App>>, Path(params): Params) -> Response {
    match app.model(&params) {
        Ok((name, served)) => {
            let delay = app.policy.max_queue_delay.as_micros() as u64;
            json_response(
                StatusCode::OK,
                served.signature.config(name, app.policy.max_batch, delay),
            )
        }
        Err(e) => app.fail(None, e),
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let mut response = app.metrics.encode().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
    response
}

async fn unknown_endpoint(method: Method, uri: Uri) -> RequestError {
    RequestError::new(ErrorKind::UnknownModel, format!("no endpoint {method} {}", uri.path()))
}

async fn infer(
    State(app): State<Arc<App>>,
    Path(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let (name, served) = match app.model(&params) {
        Ok(found) => found,
        Err(e) => return app.fail(None, e),
    };
    served.metrics.requests.inc();
    match answer(&app, name, served, &headers, body).await {
        Ok(response) => {
            served.metrics.latency.observe(start.elapsed().as_secs_f64());
            response
        }
        Err(e) => app.fail(Some(name), e),
    }
}

/// Reads, checks and queues one infer request, and encodes its answer.
async fn answer(
    app: &App,
    name: &str,
    served: &Served,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RequestError> {
    let arrival = served.batcher.arrival();
    let too_large = || {
        RequestError::new(
            ErrorKind::BodyTooLarge,
            format!("request body is larger than --max-body {} bytes", app.max_body),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(body, app.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(RequestError::bad(format!("reading the request body: {e}"))),
    };
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => {
            Some(v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
                RequestError::bad(format!("{HEADER_LENGTH} header {v:?} is not a byte count"))
            })?)
        }
    };
    let mut request = protocol::parse_request(&body, header_length, &served.signature)?;
    drop(body);
    let max_batch = app.policy.max_batch;
    if request.batch > max_batch {
        return Err(RequestError::bad(format!(
            "batch of {} examples is larger than --max-batch {max_batch}",
            request.batch
        )));
    }
    let waiting = arrival.submit(request.batch, std::mem::take(&mut request.data));
    let reply = waiting.map_err(|e| match e {
        SubmitError::Full => RequestError::new(
            ErrorKind::QueueFull,
            format!(
                "model '{name}' has {} requests queued; retry later",
                app.policy.queue_capacity
            ),
        ),
        SubmitError::Stopped => {
            RequestError::new(ErrorKind::ShuttingDown, format!("model '{name}' has stopped"))
        }
    })?;
    let logits = reply
        .get()
        .await
        .ok_or_else(|| RequestError::new(ErrorKind::Internal, format!("model '{name}' stopped")))?
        .map_err(|e| RequestError::new(ErrorKind::Internal, format!("model '{name}': {e}")))?;
    let encoded = protocol::encode_response(name, &request, &logits, served.signature.classes);
    let mut response = encoded.body.into_response();
    let content_type = match encoded.header_length {
        Some(n) => {
            response.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(n));
            "application/octet-stream"
        }
        None => "application/json",
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

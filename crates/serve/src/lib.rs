//! ticket-serve: an HTTP inference server for CSR models that speaks the Open Inference
//! Protocol (KServe v2 REST, as Triton, KServe and Seldon MLServer do), so that their clients
//! can call it, with dynamic batching: concurrent requests to one model are merged into one
//! batched kernel call.
//!
//! - [`models::load`]: the models `--model` names, loaded and validated.
//! - [`Server::bind`] starts a batching thread per model ([`batcher`]) and binds the port;
//!   [`Server::run`] serves until its shutdown future completes, then drains.
//! - [`protocol`]: the infer request and response (JSON tensors and binary tensor data);
//!   [`signature`]: the tensors a model takes and gives; [`metrics`]: `/metrics`.
//! - [`awake`]: an HTTP worker kept polling the sockets between lone requests;
//!   [`connections`]: the bound on open connections.
//!
//! ```no_run
//! # async fn serve() -> ticket_serve::Result<()> {
//! use ticket_serve::{batcher::BatchPolicy, models, server_config, Server};
//! let models = models::load(&["lenet=lenet.safetensors".to_string()])?;
//! let config = server_config("127.0.0.1:8000".parse().unwrap(), BatchPolicy::default());
//! let server = Server::bind(&config, models).await?;
//! server.run(ticket_serve::shutdown_signal()).await
//! # }
//! ```

pub mod awake;
pub mod batcher;
pub mod connections;
pub mod error;
pub mod metrics;
pub mod models;
pub mod protocol;
mod server;
pub mod signature;

pub use batcher::DEFAULT_SPIN;
pub use error::{Error, ErrorKind, RequestError, Result};
pub use server::{shutdown_signal, Config, Server};

/// Default `--max-body`: 16 MiB, room for a full default batch (64) of 3x64x64 images in JSON
/// at 20 bytes a number; a bound on what one connection can make the server hold.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// Default drain timeout: 30 s, the grace period Kubernetes gives a pod after SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Default `--max-connections`: far more than the clients a 2-64 core server batches for, and
/// a bound on the tasks and buffers they hold (well under the usual 1024 open files limit
/// with the models and the listener).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// A [`Config`] with the default body limit, connection limit and drain timeout, and no
/// keep-awake spinning (it suits a runtime of one worker only; `ticket serve` sets it).
pub fn server_config(addr: std::net::SocketAddr, policy: batcher::BatchPolicy) -> Config {
    Config {
        addr,
        policy,
        max_body: DEFAULT_MAX_BODY,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        keep_awake: std::time::Duration::ZERO,
        drain_timeout: DEFAULT_DRAIN_TIMEOUT,
    }
}

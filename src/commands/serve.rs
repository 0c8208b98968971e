//! `ticket serve`: load the models, start the server, serve until SIGTERM or Ctrl-C.

use crate::cli::ServeArgs;
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use ticket_serve::batcher::BatchPolicy;
use ticket_serve::{models, Config, Server};

pub fn run(args: ServeArgs) -> Result<()> {
    let par = super::thread_pool_apart(args.threads)?;
    let models = models::load(&args.models)?;
    let described: Vec<_> = models
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "path": m.path,
                "input_shape": m.model.graph().input_shape(),
                "classes": m.model.outputs(),
                "nnz": m.model.nnz(),
            })
        })
        .collect();
    let config = Config {
        addr: SocketAddr::new(args.host, args.port),
        policy: BatchPolicy {
            max_batch: args.max_batch,
            max_queue_delay: Duration::from_micros(args.max_queue_delay_us),
            queue_capacity: args.max_queue,
            par,
            spin: Duration::from_micros(args.spin_us),
        },
        max_body: args.max_body,
        max_connections: args.max_connections,
        keep_awake: if args.http_threads == 1 {
            Duration::from_micros(args.spin_us)
        } else {
            Duration::ZERO
        },
        drain_timeout: Duration::from_secs(args.drain_timeout_s),
    };
    // One HTTP thread by default: then it can keep polling the sockets between requests
    // (see ticket_serve::awake); with several, an idle one would sleep in epoll and take the
    // next request's wake-up anyway.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(args.http_threads);
    let runtime =
        builder.enable_all().thread_name("http").build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(&config, models).await?;
        let addr = server.local_addr()?;
        if args.json {
            println!("{}", json!({ "listening": format!("http://{addr}"), "models": described }));
        } else {
            println!("listening on http://{addr} (models: {})", server.model_names().join(", "));
        }
        std::io::stdout().flush().ok();
        server.run(ticket_serve::shutdown_signal()).await?;
        eprintln!("shut down: every request in flight was answered");
        Ok(())
    })
}

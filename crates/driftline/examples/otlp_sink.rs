//! An OTLP/HTTP trace sink for benchmarks: answers `POST /v1/traces` as a collector does,
//! decodes each request, counts its spans and discards them, printing the totals once a
//! second while they change. It is the integration tests' receiver, run on its own:
//!
//! ```sh
//! cargo run --release -p driftline --example otlp_sink -- 4318
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 driftline serve
//! ```

#[path = "../tests/it/otlp.rs"]
mod otlp;

use std::time::Duration;

fn main() {
    let port = match std::env::args().nth(1) {
        None => 4318,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("error: the port must be a number from 0 to 65535, not {arg:?}");
            std::process::exit(2);
        }),
    };
    let receiver = otlp::Receiver::start(port, false).unwrap_or_else(|error| {
        eprintln!("error: listening on 127.0.0.1:{port}: {error}");
        std::process::exit(1);
    });
    println!("receiving traces at {}", receiver.endpoint());
    let mut reported = 0;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let spans = receiver.span_count();
        if spans != reported {
            println!("{spans} spans in {} requests", receiver.requests());
            reported = spans;
        }
    }
}

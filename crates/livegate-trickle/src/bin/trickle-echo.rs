//! `trickle-echo`: a pass-through trickle worker. It subscribes to an input channel and
//! publishes every segment to an output channel as it arrives, chunk by chunk, without
//! buffering a whole segment; it exits when the input channel closes, after deleting the
//! output channel. Pipeline tests and the latency benchmark use it as the null worker.

use anyhow::Context;
use clap::Parser;
use livegate_trickle::{TricklePublisher, TrickleSubscriber};

/// Copy every segment of one trickle channel to another, as it arrives.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Channel URL to read, e.g. http://127.0.0.1:8935/ai/trickle/stream1
    #[arg(long)]
    subscribe: String,
    /// Channel URL to write, e.g. http://127.0.0.1:8935/ai/trickle/stream1-out
    #[arg(long)]
    publish: String,
    /// Leave the output channel open when the input closes.
    #[arg(long)]
    keep_output: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut subscriber = TrickleSubscriber::new(&args.subscribe).context("--subscribe")?;
    let mut publisher = TricklePublisher::new(&args.publish).context("--publish")?;

    let mut segments = 0u64;
    while let Some(mut input) = subscriber.next_segment().await.context("reading input")? {
        let mut output = publisher.next_segment();
        let mut len_bytes = 0usize;
        let mut complete = true;
        while let Some(chunk) = input.next_chunk().await {
            match chunk {
                Ok(chunk) => {
                    len_bytes += chunk.len();
                    output
                        .write(chunk)
                        .await
                        .with_context(|| format!("writing output segment {}", output.seq()))?;
                }
                Err(error) => {
                    // A broken input segment: drop the output one too (dropping the writer
                    // aborts its POST) rather than publish it as complete.
                    tracing::warn!(seq = input.seq(), %error, "input segment failed; dropping it");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            output
                .finish()
                .await
                .with_context(|| format!("finishing output segment {}", input.seq()))?;
        }
        segments += 1;
        tracing::debug!(input_seq = input.seq(), len_bytes, "segment echoed");
    }
    tracing::info!(segments, "input channel closed");
    if !args.keep_output {
        publisher
            .close()
            .await
            .context("closing the output channel")?;
    }
    Ok(())
}

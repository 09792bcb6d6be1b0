//! `lakehose streams list|describe|create|delete`: the control plane from the command line.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use crate::client::FirehoseClient;

/// `lakehose streams ...`.
#[derive(clap::Subcommand, Debug)]
pub enum StreamsCommand {
    /// List stream names.
    List,
    /// Print a stream's description as JSON.
    Describe {
        /// The stream.
        name: String,
    },
    /// Create a stream from a CreateDeliveryStream request in JSON (as `aws firehose
    /// create-delivery-stream --cli-input-json` takes).
    Create {
        /// The JSON file (`-` for standard input).
        #[arg(long = "from-json")]
        from_json: PathBuf,
    },
    /// Delete a stream and its undelivered data.
    Delete {
        /// The stream.
        name: String,
    },
}

/// Runs a streams command.
pub async fn run(client: FirehoseClient, command: StreamsCommand) -> anyhow::Result<()> {
    match command {
        StreamsCommand::List => {
            let mut start: Option<String> = None;
            loop {
                let mut body = json!({ "Limit": 10000 });
                if let Some(s) = &start {
                    body["ExclusiveStartDeliveryStreamName"] = json!(s);
                }
                let page = client.call("ListDeliveryStreams", &body).await?;
                let names = page["DeliveryStreamNames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for name in &names {
                    println!("{}", name.as_str().unwrap_or_default());
                }
                if page["HasMoreDeliveryStreams"] != json!(true) || names.is_empty() {
                    break;
                }
                start = names.last().and_then(Value::as_str).map(String::from);
            }
        }
        StreamsCommand::Describe { name } => {
            let out = client
                .call(
                    "DescribeDeliveryStream",
                    &json!({ "DeliveryStreamName": name }),
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        StreamsCommand::Create { from_json } => {
            let text = if from_json.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&from_json)
                    .with_context(|| format!("reading {}", from_json.display()))?
            };
            let body: Value = serde_json::from_str(&text).context("the file is not valid JSON")?;
            let out = client.call("CreateDeliveryStream", &body).await?;
            println!("{}", out["DeliveryStreamARN"].as_str().unwrap_or_default());
        }
        StreamsCommand::Delete { name } => {
            client
                .call(
                    "DeleteDeliveryStream",
                    &json!({ "DeliveryStreamName": name }),
                )
                .await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

//! `lakehose keygen` and `lakehose decrypt`: the command-line side of encryption at rest.
//!
//! - `keygen [KEYID]` prints a new random 32-byte master key as a keyring file line; append it
//!   to the keyring file (it becomes the active key) to rotate.
//! - `decrypt PATH [-o OUT]` opens a sealed object of a local bucket (one written for a
//!   destination with `KMSEncryptionConfig`) with the configured keyring and prints or writes
//!   its plaintext. Nothing is written when the key is missing or the object was changed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

/// `lakehose keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// The key id (1-64 of A-Z a-z 0-9 _ . -); default `key-<Unix time>`.
    pub key_id: Option<String>,
}

/// `lakehose decrypt`.
#[derive(clap::Args, Debug)]
pub struct DecryptArgs {
    /// The encrypted object (a file under DATA_DIR/buckets/).
    pub path: PathBuf,
    /// Write the plaintext here instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Configuration file whose `[encryption]` names the keyring (default: ./lakehose.toml
    /// when present; else the LAKEHOSE_MASTER_KEY environment variable).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The keyring file, instead of the configuration's.
    #[arg(long, value_name = "PATH")]
    pub keyring: Option<PathBuf>,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let id = args.key_id.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("key-{secs}")
    });
    println!("{}", lakehose_crypto::generate_key_line(&id)?);
    Ok(())
}

pub fn decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let keyring = match &args.keyring {
        Some(path) => std::sync::Arc::new(lakehose_crypto::Keyring::load(path)?),
        None => {
            let cfg = crate::config::Config::load(args.config.as_deref())?;
            cfg.encryption.keyring()?.context(
                "no keyring: name one with --keyring, [encryption] keyring_file in lakehose.toml, \
                 or the LAKEHOSE_MASTER_KEY environment variable",
            )?
        }
    };
    let sealed =
        std::fs::read(&args.path).with_context(|| format!("reading {}", args.path.display()))?;
    anyhow::ensure!(
        lakehose_crypto::object::is_sealed(&sealed),
        "{} is not an encrypted Lakehose object",
        args.path.display()
    );
    let plain = lakehose_crypto::object::open(&keyring, &sealed)
        .with_context(|| format!("decrypting {}", args.path.display()))?;
    match &args.output {
        Some(out) => {
            std::fs::write(out, &plain).with_context(|| format!("writing {}", out.display()))?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&plain)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

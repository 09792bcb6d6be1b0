//! The `[auth]` section of `lakehose.toml` and the keyring built from it.
//!
//! ```toml
//! [auth]
//! credentials_file = "/etc/lakehose/credentials"   # optional, AWS credentials-file format
//! metrics_bearer_token = "..."                     # optional: /metrics then needs it
//!
//! [[auth.keys]]
//! access_key_id = "AKIAEXAMPLE"
//! secret_access_key = "..."      # optional when credentials_file has this key id
//! allow = [ { actions = ["firehose:PutRecord*"], resources = ["arn:aws:firehose:*:*:deliverystream/clicks"] },
//!           { actions = ["glue:Get*", "athena:*"] } ]
//! ```
//!
//! Rules, checked when the server starts (a mistake refuses to start, never opens access):
//! - Keys come from `[[auth.keys]]` and from `credentials_file` (`[profile]` sections with
//!   `aws_access_key_id` and `aws_secret_access_key`; other settings are ignored). A key id
//!   may appear once in each; when both give a secret they must agree.
//! - A key's permissions come only from its `[[auth.keys]]` entry: a key found only in the
//!   credentials file authenticates but may do nothing (deny by default).
//! - Access key ids are 1 to 128 characters of `A-Za-z0-9._-` (they are part of the
//!   `Credential=` scope and of `user/` ARNs); secrets are not empty.
//! - A `credentials_file` that holds no key is an error (it would silently leave the server
//!   open).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::policy::{Policy, Statement};
use crate::sigv4::Secret;

/// `[auth]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// An AWS credentials file with more keys (their secrets; permissions come from `keys`).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Access keys and what each may do.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub metrics_bearer_token: Option<String>,
    /// `--insecure-no-auth`: serve a non-loopback address without keys (never read from the
    /// file). Keys configured still turn authentication on.
    #[serde(skip)]
    pub insecure_no_auth: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("credentials_file", &self.credentials_file)
            .field("keys", &self.keys)
            .field(
                "metrics_bearer_token",
                &self.metrics_bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish()
    }
}

/// `[[auth.keys]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The access key id clients sign with.
    pub access_key_id: String,
    /// Its secret; may come from the credentials file instead.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// What the key may do; nothing when empty.
    #[serde(default)]
    pub allow: Vec<StatementConfig>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow", &self.allow)
            .finish()
    }
}

/// One `allow` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementConfig {
    /// Action patterns, e.g. `firehose:PutRecord*`.
    pub actions: Vec<String>,
    /// Resource patterns (ARNs with `*`/`?`); default `["*"]`.
    #[serde(default = "every_resource")]
    pub resources: Vec<String>,
}

fn every_resource() -> Vec<String> {
    vec!["*".into()]
}

/// A configuration mistake; the server does not start.
#[derive(Debug, thiserror::Error)]
#[error("[auth]: {0}")]
pub struct ConfigError(pub String);

/// One known access key.
#[derive(Clone, Debug)]
pub struct Key {
    /// The signing secret.
    pub secret: Secret,
    /// What the key may do.
    pub policy: Arc<Policy>,
}

/// The access keys the server accepts.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: HashMap<String, Key>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key.
    pub fn with_key(
        mut self,
        access_key_id: &str,
        secret_access_key: &str,
        policy: Policy,
    ) -> Self {
        self.keys.insert(
            access_key_id.to_string(),
            Key {
                secret: Secret::new(secret_access_key),
                policy: Arc::new(policy),
            },
        );
        self
    }

    /// The key `access_key_id`, if known.
    pub fn get(&self, access_key_id: &str) -> Option<&Key> {
        self.keys.get(access_key_id)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key (authentication is then off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keyring `config` describes (reading its credentials file). See the module docs for
    /// the rules.
    pub fn from_config(config: &AuthConfig) -> Result<Self, ConfigError> {
        let err = |m: String| ConfigError(m);
        let mut from_file: HashMap<String, String> = HashMap::new();
        if let Some(path) = &config.credentials_file {
            for (id, secret) in read_credentials_file(path)? {
                if let Some(other) = from_file.insert(id.clone(), secret.clone())
                    && other != secret
                {
                    return Err(err(format!(
                        "access key {id} appears twice in {} with different secrets",
                        path.display()
                    )));
                }
            }
            if from_file.is_empty() {
                return Err(err(format!(
                    "credentials_file {} holds no aws_access_key_id/aws_secret_access_key pair",
                    path.display()
                )));
            }
        }
        let mut keyring = Keyring::new();
        for key in &config.keys {
            let id = &key.access_key_id;
            check_key_id(id).map_err(err)?;
            if keyring.keys.contains_key(id) {
                return Err(err(format!(
                    "access key {id} is listed twice in [[auth.keys]]"
                )));
            }
            let secret = match (&key.secret_access_key, from_file.get(id)) {
                (Some(s), Some(f)) if s != f => {
                    return Err(err(format!(
                        "access key {id}: secret_access_key differs from the credentials file's"
                    )));
                }
                (Some(s), _) => s.clone(),
                (None, Some(f)) => f.clone(),
                (None, None) => {
                    return Err(err(format!(
                        "access key {id} has no secret_access_key (and is not in credentials_file)"
                    )));
                }
            };
            if secret.is_empty() {
                return Err(err(format!("access key {id} has an empty secret")));
            }
            let statements = key
                .allow
                .iter()
                .map(|s| Statement::new(&s.actions, &s.resources))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("access key {id}: {e}")))?;
            keyring = keyring.with_key(id, &secret, Policy::new(statements));
        }
        for (id, secret) in &from_file {
            if keyring.keys.contains_key(id) {
                continue;
            }
            check_key_id(id).map_err(err)?;
            tracing::warn!(
                access_key_id = %id,
                "key from the credentials file has no [[auth.keys]] entry: it authenticates \
                 but every request is denied"
            );
            keyring = keyring.with_key(id, secret, Policy::deny_all());
        }
        Ok(keyring)
    }
}

fn check_key_id(id: &str) -> Result<(), String> {
    if (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(format!(
            "access key id {id:?} must be 1 to 128 characters of A-Za-z0-9._-"
        ))
    }
}

fn read_credentials_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("reading credentials_file {}: {e}", path.display())))?;
    parse_credentials(&text)
        .map_err(|e| ConfigError(format!("credentials_file {}: {e}", path.display())))
}

/// The `(access key id, secret)` pairs of an AWS credentials file (INI: `[profile]` sections,
/// `key = value`, `#`/`;` comments). A section with only one of the two is an error.
pub fn parse_credentials(text: &str) -> Result<Vec<(String, String)>, String> {
    type Section = (String, Option<String>, Option<String>);
    fn finish(section: Option<Section>, out: &mut Vec<(String, String)>) -> Result<(), String> {
        match section {
            Some((_, Some(id), Some(secret))) => {
                out.push((id, secret));
                Ok(())
            }
            Some((name, Some(_), None)) | Some((name, None, Some(_))) => Err(format!(
                "profile [{name}] needs both aws_access_key_id and aws_secret_access_key"
            )),
            _ => Ok(()),
        }
    }
    let mut out = Vec::new();
    let mut section: Option<Section> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            finish(section.take(), &mut out)?;
            section = Some((name.trim().to_string(), None, None));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected `key = value`", n + 1));
        };
        let Some(current) = section.as_mut() else {
            return Err(format!(
                "line {}: setting outside a [profile] section",
                n + 1
            ));
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => current.1 = Some(value),
            "aws_secret_access_key" => current.2 = Some(value),
            _ => {}
        }
    }
    finish(section.take(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_parse() {
        let pairs = parse_credentials(
            "# comment\n[default]\naws_access_key_id = AKIA1\naws_secret_access_key=s1\n\
             region = us-east-1\n\n[other]\n; c\nAWS_ACCESS_KEY_ID=AKIA2\naws_secret_access_key = s 2\n\
             [empty]\nregion = x\n",
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("AKIA1".to_string(), "s1".to_string()),
                ("AKIA2".to_string(), "s 2".to_string())
            ]
        );
        assert!(parse_credentials("[p]\naws_access_key_id = A\n").is_err());
        assert!(parse_credentials("aws_access_key_id = A\n").is_err());
        assert!(parse_credentials("[p]\nnonsense\n").is_err());
    }

    fn config(text: &str) -> AuthConfig {
        #[derive(Deserialize)]
        struct File {
            auth: AuthConfig,
        }
        toml::from_str::<File>(text).unwrap().auth
    }

    #[test]
    fn keyring_from_config() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "[a]\naws_access_key_id = FROMFILE\naws_secret_access_key = filesecret\n\
             [b]\naws_access_key_id = ONLYFILE\naws_secret_access_key = s\n",
        )
        .unwrap();
        let cfg = config(&format!(
            r#"
            [auth]
            credentials_file = "{}"
            [[auth.keys]]
            access_key_id = "INLINE"
            secret_access_key = "inline"
            allow = [ {{ actions = ["firehose:PutRecord*"], resources = ["arn:aws:firehose:*:*:deliverystream/clicks"] }},
                      {{ actions = ["glue:Get*", "athena:*"] }} ]
            [[auth.keys]]
            access_key_id = "FROMFILE"
            allow = [ {{ actions = ["*"] }} ]
            "#,
            creds.display()
        ));
        let ring = Keyring::from_config(&cfg).unwrap();
        assert_eq!(ring.len(), 3);
        let inline = ring.get("INLINE").unwrap();
        assert!(inline.policy.allows(
            "firehose:PutRecordBatch",
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/clicks"
        ));
        assert!(
            inline
                .policy
                .allows("glue:GetTable", "arn:aws:glue:r:0:table/a/b")
        );
        assert!(!inline.policy.allows("glue:DeleteTable", "*"));
        assert!(
            ring.get("FROMFILE")
                .unwrap()
                .policy
                .allows("glue:DeleteTable", "*")
        );
        assert_eq!(*ring.get("ONLYFILE").unwrap().policy, Policy::deny_all());
        assert!(format!("{cfg:?}").contains("<redacted>"));
        assert!(!format!("{cfg:?} {ring:?}").contains("inline\""));
        assert!(!format!("{ring:?}").contains("filesecret"));
    }

    #[test]
    fn mistakes_refuse_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "[default]\nregion = x\n").unwrap();
        for (text, needle) in [
            (
                "[auth]\n[[auth.keys]]\naccess_key_id = \"A\"\n",
                "no secret_access_key",
            ),
            (
                "[auth]\n[[auth.keys]]\naccess_key_id = \"A/B\"\nsecret_access_key = \"s\"\n",
                "must be 1 to 128",
            ),
            (
                "[auth]\n[[auth.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n\
                 [[auth.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n",
                "listed twice",
            ),
            (
                "[auth]\n[[auth.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n\
                 allow = [ { actions = [\"PutRecord\"] } ]\n",
                "is not \"*\" or \"service:Operation\"",
            ),
            (
                &format!("[auth]\ncredentials_file = \"{}\"\n", empty.display()),
                "holds no",
            ),
            (
                "[auth]\ncredentials_file = \"/nonexistent/creds\"\n",
                "reading credentials_file",
            ),
        ] {
            let e = Keyring::from_config(&config(text)).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            auth: AuthConfig,
        }
        assert!(toml::from_str::<File>("[auth]\nkey = 1\n").is_err());
        assert!(
            toml::from_str::<File>(
                "[auth]\n[[auth.keys]]\naccess_key_id = \"A\"\nallow = [ { action = [\"*\"] } ]\n"
            )
            .is_err()
        );
        assert!(
            Keyring::from_config(&AuthConfig::default())
                .unwrap()
                .is_empty()
        );
    }
}

//! Configuration: flags, or the environment variables they name. docs/operations.md lists them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use store::{EventStore, MasterKey, StoreOptions};

/// Where the embedded default keeps its files when nothing is configured.
pub const DEFAULT_DATA_DIR: &str = "./data";

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// `postgres://user@host/db` or `sqlite://path/to/file.db`. Default: a SQLite file under
    /// ./data (the embedded default).
    #[arg(long, env = "STRIDELOG_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// The master key wrapping every athlete's data key: 32 random bytes, base64. Default on
    /// SQLite: generated once and kept beside the database file (mode 0600). Required with
    /// PostgreSQL, where a key on one machine's disk would lock the others out.
    #[arg(
        long,
        env = "STRIDELOG_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<String>,
}

impl StoreArgs {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{DEFAULT_DATA_DIR}/stridelog.db"))
    }

    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Some(key) = &self.master_key {
            return MasterKey::from_base64(key).context("STRIDELOG_MASTER_KEY");
        }
        let url = self.url();
        let Some(path) = url.strip_prefix("sqlite://") else {
            bail!("STRIDELOG_MASTER_KEY is required with PostgreSQL (32 random bytes, base64)");
        };
        let db = Path::new(path.split('?').next().unwrap_or(path));
        let key_file = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("master.key");
        load_or_create_key(&key_file)
    }

    pub async fn open(&self) -> anyhow::Result<EventStore> {
        self.open_with(StoreOptions::default()).await
    }

    pub async fn open_with(&self, options: StoreOptions) -> anyhow::Result<EventStore> {
        let url = self.url();
        if !["postgres://", "postgresql://", "sqlite://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            bail!(
                "STRIDELOG_DATABASE_URL must start with postgres:// or sqlite://, got `{}://…`",
                url.split(':').next().unwrap_or_default()
            );
        }
        let master = self.master_key()?;
        EventStore::connect(&url, master, options)
            .await
            .with_context(|| format!("cannot open the store at {}", redact(&url)))
    }
}

/// Rate limits and client addresses (docs/operations.md, "Rate limits"; D39). Rates are
/// `<count>/<window>`: `100/min`, `10/h`, `5/30s`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Every limited route not in another class, per account (signed in) or client address.
    #[arg(long, env = "STRIDELOG_RATE_GENERAL", default_value = "100/min")]
    pub rate_general: api::limits::Rate,
    /// `POST /v1/correlations/recompute`, per account.
    #[arg(long, env = "STRIDELOG_RATE_RECOMPUTE", default_value = "10/h")]
    pub rate_recompute: api::limits::Rate,
    /// Admin routes, per account.
    #[arg(long, env = "STRIDELOG_RATE_ADMIN", default_value = "50/min")]
    pub rate_admin: api::limits::Rate,
    /// `POST /v1/auth/register`, per client address.
    #[arg(long, env = "STRIDELOG_RATE_REGISTER", default_value = "5/h")]
    pub rate_register: api::limits::Rate,
    /// `POST /v1/auth/register`, per address block (/24 IPv4, /56 IPv6).
    #[arg(long, env = "STRIDELOG_RATE_REGISTER_BLOCK", default_value = "20/h")]
    pub rate_register_block: api::limits::Rate,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` name the client: comma-separated
    /// addresses or CIDR blocks. Default: none (the TCP peer is the client).
    #[arg(long, env = "STRIDELOG_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// `redis://host:port/db`: rate limits and the read cache shared by every `serve`
    /// process. Default: both in-process.
    #[arg(long, env = "STRIDELOG_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key of this deployment (limits under `<prefix>:rl:`, the read
    /// cache under `<prefix>:v1:`).
    #[arg(long, env = "STRIDELOG_REDIS_PREFIX", default_value = api::cache::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Longest wait for Redis per check before limiting in-process, in milliseconds.
    #[arg(long, env = "STRIDELOG_REDIS_TIMEOUT_MS", default_value_t = 100)]
    pub redis_timeout_ms: u64,
}

impl LimitArgs {
    pub fn settings(&self) -> anyhow::Result<api::limits::Settings> {
        Ok(api::limits::Settings {
            general: self.rate_general,
            recompute: self.rate_recompute,
            admin: self.rate_admin,
            register_client: self.rate_register,
            register_block: self.rate_register_block,
            trusted_proxies: api::client_addr::parse_cidrs(&self.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("STRIDELOG_TRUSTED_PROXIES: {e}"))?,
            redis_url: self.redis_url.clone().filter(|u| !u.trim().is_empty()),
            redis_prefix: format!("{}:rl:", self.redis_prefix),
            redis_timeout: std::time::Duration::from_millis(self.redis_timeout_ms.max(1)),
        })
    }
}

/// The access-token signing secret. `serve` refuses to start without one: a generated secret
/// would differ between processes and sign nothing the others accept.
#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// At least 32 random bytes, base64 (`openssl rand -base64 32`).
    #[arg(long, env = "STRIDELOG_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

impl JwtArgs {
    pub fn secret(&self) -> anyhow::Result<Vec<u8>> {
        let Some(text) = &self.jwt_secret else {
            bail!(
                "STRIDELOG_JWT_SECRET is required to serve the API (32 random bytes, base64: \
                 `openssl rand -base64 32`); `stridelog demo` runs without one"
            );
        };
        decode_secret(text)
    }
}

fn decode_secret(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .context("STRIDELOG_JWT_SECRET must be base64")?;
    if bytes.len() < 32 {
        bail!(
            "STRIDELOG_JWT_SECRET must decode to at least 32 bytes, got {}",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// The demo's signing secret: generated once beside the SQLite file (mode 0600).
#[cfg(feature = "devtools")]
pub fn demo_jwt_secret(store: &StoreArgs) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::env::var("STRIDELOG_JWT_SECRET") {
        return decode_secret(&text);
    }
    let url = store.url();
    let dir = url
        .strip_prefix("sqlite://")
        .map(|p| Path::new(p.split('?').next().unwrap_or(p)).to_path_buf())
        .and_then(|db| db.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let path = dir.join("jwt.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_secret(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use base64::Engine as _;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let bytes: [u8; 32] = rand::random();
            write_private(
                &path,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            )?;
            Ok(bytes.to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn load_or_create_key(path: &PathBuf) -> anyhow::Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::from_base64(&text).with_context(|| path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let key = MasterKey::generate();
            write_private(path, &key.to_base64())?;
            tracing::info!(path = %path.display(), "generated a master key for the embedded store");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A database URL fit for logs and errors: the password is replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn the_embedded_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let args = StoreArgs {
            database_url: Some(format!("sqlite://{}/db/s.db", dir.path().display())),
            master_key: None,
        };
        let first = args.master_key().unwrap();
        let second = args.master_key().unwrap();
        assert_eq!(first.to_base64(), second.to_base64());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("db/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn postgres_needs_a_configured_key() {
        let args = StoreArgs {
            database_url: Some("postgres://postgres@127.0.0.1/x".into()),
            master_key: None,
        };
        let err = args.master_key().unwrap_err().to_string();
        assert!(err.contains("STRIDELOG_MASTER_KEY is required"), "{err}");
    }
}

/// The server's bounds on connections and requests (docs/operations.md, "Limits").
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Open connections at once, all clients together (lowered to fit the file-descriptor
    /// limit).
    #[arg(long, env = "STRIDELOG_MAX_CONNECTIONS", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open connections at once from one client address (IPv6: its /64).
    #[arg(long, env = "STRIDELOG_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,
    /// Seconds a connection may take to send a complete request head (new, or idle between
    /// requests) before it is closed.
    #[arg(long, env = "STRIDELOG_HEADER_READ_TIMEOUT_S", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub header_read_timeout_s: u32,
    /// Seconds a request body may send nothing before the request is answered 408.
    #[arg(long, env = "STRIDELOG_BODY_IDLE_TIMEOUT_S", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub body_idle_timeout_s: u32,
    /// Requests in progress at once in this process; beyond it, 503 with Retry-After.
    #[arg(long, env = "STRIDELOG_MAX_IN_FLIGHT", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// File imports buffered and parsed at once in this process (each up to 32 MiB).
    #[arg(long, env = "STRIDELOG_IMPORT_SLOTS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub import_slots: u32,
}

impl Default for EdgeArgs {
    fn default() -> Self {
        let connections = api::server::ConnectionLimits::default();
        let requests = api::RequestLimits::default();
        Self {
            max_connections: connections.max_connections as u32,
            max_connections_per_client: connections.max_per_client as u32,
            header_read_timeout_s: connections.header_read_timeout.as_secs() as u32,
            body_idle_timeout_s: requests.body_idle_timeout.as_secs() as u32,
            max_in_flight: requests.max_in_flight as u32,
            import_slots: requests.import_slots as u32,
        }
    }
}

impl EdgeArgs {
    /// The connection bounds, the total cap lowered to fit `nofile` descriptors.
    pub fn connections(&self, nofile: u64) -> api::server::ConnectionLimits {
        api::server::ConnectionLimits {
            max_connections: self.max_connections as usize,
            max_per_client: self.max_connections_per_client as usize,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_s.into()),
        }
        .within_fd_limit(nofile)
    }

    pub fn requests(&self) -> api::RequestLimits {
        api::RequestLimits {
            max_in_flight: self.max_in_flight as usize,
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout_s.into()),
            import_slots: self.import_slots as usize,
        }
    }
}

/// The read cache of `serve` (api/src/cache.rs, D41) besides `STRIDELOG_REDIS_URL` and
/// `STRIDELOG_REDIS_PREFIX` (with the rate limits' settings).
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// Bound of the in-process read cache (used without Redis), in MiB; 0 turns caching off.
    #[arg(long, env = "STRIDELOG_CACHE_MEMORY_MB", default_value_t = 64)]
    pub cache_memory_mb: u64,
}

impl CacheArgs {
    /// Redis when a URL is given (shared by every `serve`), else in process.
    pub fn cache(
        &self,
        redis_url: Option<&str>,
        prefix: &str,
    ) -> anyhow::Result<api::cache::ReadCache> {
        Ok(match redis_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => api::cache::ReadCache::redis(url, prefix)
                .with_context(|| format!("STRIDELOG_REDIS_URL {}", redact(url)))?,
            None if self.cache_memory_mb == 0 => api::cache::ReadCache::off(),
            None => api::cache::ReadCache::memory(self.cache_memory_mb.saturating_mul(1 << 20)),
        })
    }
}

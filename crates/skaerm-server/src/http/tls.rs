//! HTTPS: the server terminates TLS itself with rustls (ring provider), from certificate and
//! key files or from a self-signed certificate generated with rcgen for development (kept in
//! the data directory, so a browser's one-time exception survives restarts).

use crate::config::ServerConfig;
use anyhow::{Context, bail};
use axum_server::tls_rustls::RustlsConfig;
use std::path::Path;

/// The TLS setup in effect.
pub struct Tls {
    /// What the acceptor uses.
    pub config: RustlsConfig,
    /// The served certificate (chain), PEM, for clients that pin it (tests, development).
    pub certificate_pem: String,
}

/// The TLS setup asked for in `config`, if any.
pub async fn load(config: &ServerConfig) -> anyhow::Result<Option<Tls>> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
        (Some(cert), Some(key), false) => (
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        ),
        (None, None, true) => self_signed(&config.data_dir.join("tls"), config)?,
        (None, None, false) => return Ok(None),
        _ => bail!("give either --tls-cert with --tls-key, or --tls-self-signed"),
    };
    let certificate_pem = String::from_utf8(cert.clone()).context("certificate is not PEM")?;
    let config = RustlsConfig::from_pem(cert, key)
        .await
        .context("loading the TLS certificate and key")?;
    Ok(Some(Tls {
        config,
        certificate_pem,
    }))
}

/// The development certificate in `dir`, generated on first use for `localhost`, the
/// loopback addresses and the public URL's host.
fn self_signed(dir: &Path, config: &ServerConfig) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let cert_path = dir.join("self-signed-cert.pem");
    let key_path = dir.join("self-signed-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((std::fs::read(&cert_path)?, std::fs::read(&key_path)?));
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, rest)| rest.split(['/', ':']).next())
        .filter(|host| !host.is_empty() && !names.iter().any(|n| n == host))
    {
        names.push(host.to_owned());
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private(&key_path, key.as_bytes())?;
    std::fs::write(&cert_path, cert.as_bytes())?;
    tracing::warn!(
        path = %cert_path.display(),
        "serving HTTPS with a self-signed development certificate"
    );
    Ok((cert.into_bytes(), key.into_bytes()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
    }
    .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(not(unix))]
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    Ok(())
}

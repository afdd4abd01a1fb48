//! HTTPS served by the server itself (rustls, self-signed development certificate), fetched
//! over real TLS by a client that trusts exactly that certificate, and the security headers
//! every page and API response carries.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use skaerm_e2e::server::{PASSWORD, TestServer};
use skaerm_server::http::csrf::CSRF_HEADER;
use std::sync::Arc;

/// A client trusting only `pem`.
fn client_trusting(pem: &str) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .cookie_store(true)
        .build()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_pages_and_api_with_strict_security_headers() -> Result<()> {
    let server = TestServer::start_with(&["--tls-self-signed"]).await?;
    let base = server.server.public_url().to_owned();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let pem = server.server.certificate_pem().unwrap();
    let client = client_trusting(pem)?;

    for path in [
        "/",
        "/visit/x",
        "/j/abc",
        "/assets/js/api.js",
        "/api/me",
        "/healthz",
    ] {
        let response = client.get(format!("{base}{path}")).send().await?;
        let h = response.headers();
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            get("strict-transport-security"),
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
        let csp = get("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
        let permissions = get("permissions-policy");
        assert!(
            permissions.contains("camera=(self)") && permissions.contains("microphone=(self)"),
            "{path}: {permissions}"
        );
    }

    // Logging in over TLS sets Secure cookies.
    let m = server.municipality("Testkommune").await?;
    let response = client
        .post(format!("{base}/api/session"))
        .header(CSRF_HEADER, "1")
        .json(&json!({"username": m.username, "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(
            cookie.contains("Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }
    let me = client.get(format!("{base}/api/me")).send().await?;
    assert_eq!(me.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_certificate_is_refused() -> Result<()> {
    let server = TestServer::start_with(&["--tls-self-signed"]).await?;
    let base = server.server.public_url().to_owned();
    // Another self-signed certificate as the only root: the handshake must fail.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let client = client_trusting(&other.cert.pem())?;
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
    // Plain HTTP on the TLS port is not served either.
    let plain = reqwest::Client::new()
        .get(base.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.is_err() || !plain?.status().is_success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_sends_no_hsts_but_the_other_headers() -> Result<()> {
    let server = TestServer::start().await?;
    let response = reqwest::Client::new()
        .get(format!("{}/", server.url()))
        .send()
        .await?;
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert!(response.headers().get("content-security-policy").is_some());
    Ok(())
}

/// The web client's pages obey the CSP: no inline script, no inline style, no event-handler
/// attributes, scripts only as same-origin modules.
#[test]
fn web_client_pages_have_no_inline_script_or_style() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client");
    let mut pages = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("html") {
            continue;
        }
        pages += 1;
        let html = std::fs::read_to_string(&path)?.to_lowercase();
        let name = path.display();
        for (i, _) in html.match_indices("<script") {
            let tag_end = html[i..].find('>').map(|e| i + e).unwrap();
            let tag = &html[i..=tag_end];
            assert!(
                tag.contains(" src=\"/"),
                "{name}: inline or foreign script {tag}"
            );
            assert!(
                html[tag_end + 1..].trim_start().starts_with("</script>"),
                "{name}: {tag}"
            );
        }
        assert!(!html.contains("<style"), "{name}: inline <style>");
        assert!(!html.contains(" style=\""), "{name}: style attribute");
        assert!(!html.contains("javascript:"), "{name}: javascript: URL");
        for handler in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            " oninput=",
        ] {
            assert!(!html.contains(handler), "{name}: {handler}");
        }
    }
    assert!(pages >= 3, "found only {pages} pages in {}", dir.display());
    Ok(())
}

/// Display names (staff, citizens, providers) can hold HTML or script: the web client only ever
/// sets text, so no script in it may write HTML.
#[test]
fn web_client_scripts_never_write_html() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client/assets/js");
    let mut scripts = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("js") {
            continue;
        }
        scripts += 1;
        let code = std::fs::read_to_string(&path)?;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!code.contains(sink), "{}: uses {sink}", path.display());
        }
    }
    assert!(scripts >= 5, "found only {scripts} scripts");
    Ok(())
}

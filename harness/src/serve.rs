//! `tumult serve`: the results store over HTTP on the loopback interface, for browsing runs:
//! the index (made afresh on every visit, so new runs appear), each run's directory, and
//! every file in it. Read-only; nothing outside the store is ever served.

use std::path::{Component, Path, PathBuf};

use crate::pages;

/// An answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
        }
    }

    fn html(body: String) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        }
    }
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("jsonl") | Some("edn") | Some("txt") | Some("log") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The path below `root` that `url` names, or `None` if it would leave the store (`..`,
/// an absolute path) or is not valid UTF-8 after decoding.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path)?;
    let mut resolved = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(resolved)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A directory's listing, linking each entry.
fn listing(url: &str, dir: &Path) -> std::io::Result<Reply> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.path().is_dir();
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    names.sort();
    let base = if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    };
    let items: String = names
        .iter()
        .map(|(name, is_dir)| {
            let slash = if *is_dir { "/" } else { "" };
            format!(
                "<li><a href=\"{}{}{slash}\">{}{slash}</a></li>\n",
                pages::escape(&base),
                pages::escape(name),
                pages::escape(name)
            )
        })
        .collect();
    let title = pages::escape(&base);
    let body = format!("<p><a href=\"/\">all runs</a></p>\n<h1>{title}</h1>\n<ul>\n{items}</ul>\n");
    Ok(Reply::html(pages::html_page(&base, "", &body)))
}

/// The answer to a GET of `url` from the store at `root`.
pub fn respond(root: &Path, url: &str) -> Reply {
    let path_part = url.split(['?', '#']).next().unwrap_or("");
    if path_part == "/" || path_part == "/index.html" {
        return match pages::index_html(root) {
            Ok(page) => Reply::html(page),
            Err(e) => Reply::text(500, &format!("cannot list the store: {e}")),
        };
    }
    let Some(path) = resolve(root, url) else {
        return Reply::text(400, "bad path: it must stay inside the results store");
    };
    if path.is_dir() {
        return listing(path_part, &path).unwrap_or_else(|e| Reply::text(500, &format!("cannot list: {e}")));
    }
    match std::fs::read(&path) {
        Ok(body) => Reply {
            status: 200,
            content_type: content_type(&path),
            body,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Reply::text(404, "no such file in the results store")
        }
        Err(e) => Reply::text(500, &format!("cannot read: {e}")),
    }
}

/// Serves the store at `root` on `addr` until the process is stopped, calling `on_ready`
/// with the bound address once listening.
pub fn serve(root: &Path, addr: &str, on_ready: impl FnOnce(std::net::SocketAddr)) -> Result<(), ServeError> {
    let server = tiny_http::Server::http(addr).map_err(|e| ServeError::Bind {
        addr: addr.to_string(),
        message: e.to_string(),
    })?;
    if let Some(bound) = server.server_addr().to_ip() {
        on_ready(bound);
    }
    for request in server.incoming_requests() {
        let reply = match request.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => respond(root, request.url()),
            _ => Reply::text(405, "only GET and HEAD: the store is read-only here"),
        };
        let header = tiny_http::Header::from_bytes("Content-Type", reply.content_type)
            .expect("a static, valid header");
        let response = tiny_http::Response::from_data(reply.body)
            .with_status_code(reply.status)
            .with_header(header);
        // A browser that went away mid-answer is no reason to stop serving.
        let _ = request.respond(response);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("single-queue-kill/20261125T000000Z-s1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("results.json"), r#"{"valid": true, "op-count": 12}"#).unwrap();
        std::fs::write(run.join("latency.svg"), "<svg/>").unwrap();
        std::fs::write(root.path().join("secret"), "outside a run, but inside the store").unwrap();
        root
    }

    #[test]
    fn the_index_lists_runs_and_every_file_of_a_run_is_served() {
        let root = store();
        let index = respond(root.path(), "/");
        assert_eq!(index.status, 200);
        let page = String::from_utf8(index.body).unwrap();
        assert!(page.contains("single-queue-kill/20261125T000000Z-s1/latency.svg"));
        let svg = respond(root.path(), "/single-queue-kill/20261125T000000Z-s1/latency.svg");
        assert_eq!(
            (svg.status, svg.content_type, svg.body),
            (200, "image/svg+xml", b"<svg/>".to_vec())
        );
        let dir = respond(root.path(), "/single-queue-kill/20261125T000000Z-s1/");
        assert!(String::from_utf8(dir.body).unwrap().contains("results.json"));
        assert_eq!(
            respond(root.path(), "/single-queue-kill/nothing.json").status,
            404
        );
    }

    #[test]
    fn nothing_outside_the_store_is_served() {
        let root = store();
        for url in ["/../etc/passwd", "/%2e%2e/etc/passwd", "/a/../../x", "/%zz"] {
            assert_eq!(respond(root.path(), url).status, 400, "{url}");
        }
    }
}

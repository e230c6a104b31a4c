//! The web console: a small app of plain JavaScript modules (`console/app/`), compiled into
//! the binary so that a node on an isolated network serves it whole. `/console/` answers the
//! page; its files are named with a tag of their contents (`?v=`), cached for a year, and the
//! page itself is checked again each time (`ETag`), so a new binary's console is seen at once.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::Digest;
use std::sync::LazyLock;

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../console/app/",
                $name
            )),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("chart.js", JS),
    asset!("ui.js", JS),
    asset!("overview.js", JS),
    asset!("tasks.js", JS),
    asset!("task.js", JS),
    asset!("dead.js", JS),
    asset!("submit.js", JS),
    asset!("tokens.js", JS),
    asset!("icon.svg", "image/svg+xml"),
];

const INDEX: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../console/app/index.html"
));

/// A tag of every file's contents.
static TAG: LazyLock<String> = LazyLock::new(|| {
    let mut hash = sha2::Sha256::new();
    hash.update(INDEX);
    for asset in ASSETS {
        hash.update(asset.bytes);
    }
    hex::encode(&hash.finalize()[..6])
});

/// A file's bytes as served: a module's imports of its neighbours name them by the tag too.
static BODIES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| match a.name.ends_with(".js") {
            true => String::from_utf8_lossy(a.bytes)
                .replace(".js\";", &format!(".js?v={}\";", *TAG))
                .into_bytes(),
            false => a.bytes.to_vec(),
        })
        .collect()
});

/// The page, with every file named by the tag.
static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("{{tag}}", &TAG));

/// Only this node's own files and API; no inline script; not framed.
const POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(to_console))
        .service(web::resource("/console").get(to_console))
        .service(web::resource("/console/").get(page))
        .service(web::resource("/console/{file}").get(file));
}

async fn to_console() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

/// `body` (of type `mime`) with its ETag and `cache`, or 304 when the client has it.
fn serve(req: &HttpRequest, body: &'static [u8], mime: &str, cache: &str) -> HttpResponse {
    let etag = format!("\"{}\"", *TAG);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = match unchanged {
        true => HttpResponse::NotModified(),
        false => HttpResponse::Ok(),
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    match unchanged {
        true => res.finish(),
        false => res.content_type(mime).body(body),
    }
}

async fn page(req: HttpRequest) -> HttpResponse {
    let mut res = serve(
        &req,
        PAGE.as_bytes(),
        "text/html; charset=utf-8",
        "no-cache",
    );
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(at) = ASSETS.iter().position(|a| a.name == name.as_str()) else {
        return actix_web::ResponseError::error_response(&super::error::ApiError::new(
            protocol::ErrorCode::NotFound,
            format!("the console has no file `{name}`"),
        ));
    };
    // Named by the tag: the same name always has the same bytes.
    let cache = match req.query_string() == format!("v={}", *TAG) {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    serve(&req, &BODIES[at], ASSETS[at].mime, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_file_it_loads_with_the_tag() {
        assert!(!PAGE.contains("{{tag}}"));
        for linked in ["style.css", "app.js", "icon.svg"] {
            assert!(PAGE.contains(&format!("{linked}?v={}", *TAG)), "{linked}");
        }
        // Every module imports its neighbours by the names the node serves.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for import in text.lines().filter_map(|l| l.split("from \"./").nth(1)) {
                let name = import.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {name}",
                    asset.name
                );
            }
        }
        let app = ASSETS.iter().position(|a| a.name == "app.js").unwrap();
        let served = String::from_utf8(BODIES[app].clone()).unwrap();
        assert!(served.contains(&format!("from \"./api.js?v={}\";", *TAG)));
    }
}

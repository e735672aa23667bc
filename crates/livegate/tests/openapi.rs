//! `openapi.yaml` documents exactly the routes the gateway serves, so the two cannot drift.
//!
//! The served side comes from the router itself, built by `livegate::http::router` with every
//! optional part on (WHIP, WHEP, the hosted trickle channels, the admin token): its paths from
//! axum's `Debug` of the router (the only place axum lists them; the test fails loudly if that
//! output stops yielding them), its methods by sending every method to every path on
//! 127.0.0.1 with the admin token (a method a path does not serve is 405, whatever the
//! handlers answer).
//! The documented side is read from the `paths` section of the file, whose shape this test
//! holds to: a path per two-space key, an operation per four-space method key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use livegate::admin::AdminAccess;
use livegate::http::{router, AppState};
use livegate::metrics::Metrics;
use livegate::rtc_metrics::RtcMetrics;
use livegate_media::registry::StreamRegistry;
use livegate_pipeline::{Pipeline, WorkerContext};
use livegate_rtc::{RtcConfig, RtcServer};
use livegate_trickle::{ServerConfig as TrickleServerConfig, TrickleServer};
use livegate_whep::{OutputConfig, StreamOutputs, WhepConfig, WhepMetrics, WhepServer};
use livegate_whip::{WhipConfig, WhipMetrics, WhipServer};

/// The methods probed and documented. HEAD goes with GET in axum and is not listed.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const ADMIN_TOKEN: &str = "openapi-test";

type Routes = BTreeSet<(String, String)>;

/// (METHOD, path) of every operation under `paths` in `openapi.yaml`.
fn documented() -> Routes {
    let yaml = include_str!("../openapi.yaml");
    let mut routes = Routes::new();
    let (mut in_paths, mut path) = (false, None::<String>);
    for line in yaml.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 {
            in_paths = content == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        let key = content.split(':').next().unwrap();
        match indent {
            2 => {
                assert!(key.starts_with('/'), "a path key, unquoted: {line:?}");
                path = Some(key.to_owned());
            }
            4 => {
                // A `$ref`'d path item would hide its operations from this reader.
                assert_ne!(key, "$ref", "write the path item out: {line:?}");
                let method = key.to_ascii_uppercase();
                if METHODS.contains(&method.as_str()) || method == "HEAD" || method == "TRACE" {
                    routes.insert((method, path.clone().expect("a method under a path")));
                }
            }
            _ => {}
        }
    }
    routes
}

/// The gateway's router with every optional part on.
async fn full_router() -> Router {
    let metrics = Metrics::new().unwrap();
    let registry = StreamRegistry::new();
    let bind = || RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()));
    let whep = WhepServer::new(
        WhepConfig::default(),
        registry.clone(),
        StreamOutputs::new(OutputConfig::default()).unwrap(),
        bind().await.unwrap(),
        WhepMetrics::register(&metrics.registry).unwrap(),
    );
    let whip = WhipServer::new(
        WhipConfig::default(),
        registry.clone(),
        Pipeline::Passthrough,
        bind().await.unwrap(),
        WhipMetrics::register(&metrics.registry).unwrap(),
    );
    let state = AppState {
        rtc: RtcMetrics::register(&metrics.registry, Vec::new()).unwrap(),
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        allow_cors: false,
        registry,
        workers: WorkerContext {
            trickle_server: Some(TrickleServer::new(TrickleServerConfig::default())),
            ..WorkerContext::default()
        },
        whep: Some(whep.clone()),
        whip: Some(whip.clone()),
        admin: AdminAccess::from_config(ADMIN_TOKEN),
    };
    router(state, Some(whep), Some(whip))
}

/// The route templates of `router`: the quoted strings of the first `paths: {...}` map in
/// its `Debug` output (axum's path router; the fallback router's comes after).
fn router_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let start = debug
        .find("paths: {")
        .expect("axum's Router Debug lists `paths: {`; update this reader for the new axum")
        + "paths: {".len();
    let (mut paths, mut depth, mut quoted, mut current) = (BTreeSet::new(), 0, false, None);
    let mut chars = debug[start..].chars();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '\\') => current.get_or_insert_with(String::new).extend(chars.next()),
            (true, '"') => {
                quoted = false;
                paths.insert(current.take().unwrap_or_default());
            }
            (true, c) => current.get_or_insert_with(String::new).push(c),
            (false, '"') => quoted = true,
            (false, '{') => depth += 1,
            (false, '}') if depth == 0 => break,
            (false, '}') => depth -= 1,
            _ => {}
        }
    }
    assert!(
        paths.contains("/healthz") && paths.contains("/live/{stream}/whip"),
        "could not read the routes from axum's Debug output: {paths:?}"
    );
    paths
}

/// `path` with every `{param}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{seq}" => "0",
            s if s.starts_with('{') => "probe",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends `method` to `path`: whether the router serves it. A route that holds the request
/// (a trickle long-poll) is served; a 405 comes at once.
async fn serves(client: &reqwest::Client, base: &str, method: &str, path: &str) -> bool {
    let request = client.request(method.parse().unwrap(), format!("{base}{path}"));
    match tokio::time::timeout(Duration::from_secs(3), request.send()).await {
        Ok(response) => response.unwrap().status() != reqwest::StatusCode::METHOD_NOT_ALLOWED,
        Err(_) => true,
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_exactly_the_served_routes() {
    let router = full_router().await;
    let paths = router_paths(&router);
    let base = serve(router).await;
    // The admin token on every probe: the operator routes check it before the method.
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    let mut served = Routes::new();
    for path in &paths {
        for method in METHODS {
            if serves(&client, &base, method, &concrete(path)).await {
                served.insert((method.to_owned(), path.clone()));
            }
        }
    }
    // The probe can tell a route from none.
    assert!(!serves(&client, &base, "GET", "/live/probe/whip").await);
    let unknown = client.get(format!("{base}/no-such-route")).send().await;
    assert_eq!(unknown.unwrap().status(), reqwest::StatusCode::NOT_FOUND);

    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "openapi.yaml is out of date.\nserved but not documented: {undocumented:?}\n\
         documented but not served: {gone:?}"
    );
}

#[test]
fn the_reader_sees_every_operation() {
    let documented = documented();
    // Spot checks that the reader follows the file's shape (aliases included).
    for (method, path) in [
        ("GET", "/streams"),
        ("DELETE", "/streams/{key}"),
        ("POST", "/live/video-to-video/{stream}/whip"),
        ("OPTIONS", "/live/video-to-video/{stream_out}/whep"),
        ("PATCH", "/live/{stream}/whep/{id}"),
        ("GET", "/ai/trickle/{channel}/{seq}"),
    ] {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path}"
        );
    }
}

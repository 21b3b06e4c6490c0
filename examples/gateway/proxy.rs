//! The gateway: an axum router that forwards every `/v1/...` request to the upstream through a
//! hyper-util client, streaming the request and response bodies both ways.
//!
//! Our layers sit in two places:
//! - [`client_stack`], the client side around the hyper-util client:
//!   `RetryLayer` (full-jitter backoff, server hints honored, the request body replayed byte for
//!   byte) over `SseErrorLayer` (an error event inside a `200` stream ends the body with an
//!   `Err` that downcasts to `ApiError`; `withhold_error_event`, so the upstream's own error
//!   event, in the upstream's dialect, is not passed on: the client gets one error event, the
//!   gateway's);
//! - [`router`], the server side: `TraceLayer::new(LlmClassifier::new())` (the trace sees
//!   in-band failures too), `RenderErrorLayer` (every error leaves in the chosen dialect),
//!   `StreamErrorLayer` (a stream that fails half-way ends with one error event in the dialect)
//!   and `ApiKeyLayer` (a request without a key is refused before it costs an upstream call; the
//!   key itself is passed through to the upstream, which judges it, and is never logged).
//!
//! Upstream error responses that are not retried (or not any more) are re-rendered in the
//! chosen dialect by [`translate`].

use crate::journal::Journal;
use crate::upstream::ID_HEADER;
use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, Request, Response, Uri, Version, header},
    routing::any,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};
use tower_http::trace::TraceLayer;
use tower_llm_errors::{
    ApiError, BoxError, Dialect, ErrorKind,
    classify::LlmClassifier,
    retry::{RetryError, RetryInfo, RetryLayer},
    server::{ApiKey, ApiKeyLayer, KeyVerdict, RenderErrorLayer, StreamErrorLayer, translate},
    sse::SseErrorLayer,
};

/// The client stack as one cloneable service: whatever layers wrap the hyper-util client, the
/// gateway sees requests and responses with axum bodies.
pub type UpstreamService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// Error bodies are read up to this many bytes to classify and translate them.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The demo's retry settings: small delays so the burst stays fast.
pub fn retry_layer() -> RetryLayer {
    RetryLayer::new()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(400))
        .max_retry_after(Duration::from_secs(2))
        .on_retry(|info: &RetryInfo<'_>| {
            crate::journal::record_retry(info.delay(), info.hint_source())
        })
}

/// Builds the client stack: a hyper-util legacy client (HTTP/1, plain `http://`) wrapped in
/// our client layers, or in none of them when `layers` is false (the load test's baseline).
pub fn client_stack(layers: bool) -> UpstreamService {
    // Without layers: the client behind adapters only (axum bodies out, boxed errors).
    if !layers {
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build_http();
        let bare = ServiceBuilder::new()
            .map_response(|res: Response<_>| res.map(Body::new))
            .map_err(Into::<BoxError>::into)
            .service(client);
        return BoxCloneSyncService::new(bare);
    }
    // With layers: retry over SSE inspection over the client. The retry layer's errors are
    // already boxed; it hands the client a replayable wrapper of the request body
    // (`ReplayBody<Body>`), and the client's body type is inferred from it.
    let client = Client::builder(TokioExecutor::new()).build_http();
    let stack = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .layer(retry_layer())
        .layer(SseErrorLayer::new().withhold_error_event())
        .service(client);
    BoxCloneSyncService::new(stack)
}

/// The gateway's settings and client.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// The upstream origin (and optional base path), without a trailing `/`.
    base: String,
    dialect: Dialect,
    client: UpstreamService,
    /// Set in the demo, so the burst can read what happened to each request.
    journal: Option<Journal>,
    /// Print one line per request on stderr (method, path, status, time; never headers).
    log: bool,
    /// With our layers (the default) or without (the load test's baseline).
    layers: bool,
}

impl Gateway {
    /// A gateway in front of `upstream`, an `http://host:port[/base]` URL.
    pub fn new(upstream: &str, dialect: Dialect) -> Result<Gateway, String> {
        let uri: Uri = upstream
            .parse()
            .map_err(|e| format!("--upstream {upstream:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "--upstream: https is not supported yet (this example's client has no TLS \
                     connector); use an http:// endpoint such as a local OpenAI-compatible server"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "--upstream {upstream:?}: expected http://host:port"
                ));
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--upstream {upstream:?}: no host"))?;
        let base = format!("http://{authority}{}", uri.path().trim_end_matches('/'));
        Ok(Gateway {
            base,
            dialect,
            client: client_stack(true),
            journal: None,
            log: false,
            layers: true,
        })
    }

    /// Records each demo request's waits in `journal`.
    pub fn journal(mut self, journal: Journal) -> Gateway {
        self.journal = Some(journal);
        self
    }

    /// The same gateway with none of our layers: a plain streaming proxy.
    pub fn without_layers(mut self) -> Gateway {
        self.client = client_stack(false);
        self.layers = false;
        self
    }

    /// Logs one line per request on stderr.
    pub fn log(mut self, on: bool) -> Gateway {
        self.log = on;
        self
    }
}

/// The gateway's axum router: every `/v1/...` request is forwarded.
pub fn router(gateway: Gateway) -> Router {
    let (dialect, layers) = (gateway.dialect, gateway.layers);
    let router = Router::new()
        .route("/v1/{*path}", any(forward))
        .with_state(Arc::new(gateway));
    if !layers {
        return router;
    }
    router.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new(LlmClassifier::new())) // sees in-band failures too
            .layer(RenderErrorLayer::new(dialect)) // every error leaves in the dialect
            .layer(StreamErrorLayer::new(dialect)) // a stream failing half-way: one error event
            .layer(ApiKeyLayer::new(dialect, pass_key_through)),
    )
}

/// The key guard's validator: any key is accepted here and passed on untouched; the upstream
/// judges it (and answers `401` in its own dialect, which the gateway translates). A request
/// without a key never reaches the upstream.
async fn pass_key_through(_key: ApiKey) -> KeyVerdict {
    KeyVerdict::Accept
}

/// Serves `router` on a fresh 127.0.0.1 port in a background task.
pub async fn spawn_local(router: Router) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("server on {addr} stopped: {e}");
        }
    });
    Ok((addr, task))
}

/// Headers that describe one hop, not the message: never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

async fn forward(
    State(gw): State<Arc<Gateway>>,
    req: Request<Body>,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    // Logged without the query string: some APIs take the key as a query parameter.
    let path = parts.uri.path().to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = format!("{}{path_and_query}", gw.base)
        .parse()
        .map_err(|_| ApiError::new(ErrorKind::InvalidRequest, "the request path is not valid"))?;
    // The client sets Host from the upstream URL; every other end-to-end header, the API key
    // included, goes through untouched.
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    // The upstream hop is HTTP/1.1 whatever the client spoke; the answer goes back in the
    // client's version.
    let client_version = std::mem::replace(&mut parts.version, Version::HTTP_11);
    let demo_id = parts
        .headers
        .get(ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let call = gw.client.clone().oneshot(Request::from_parts(parts, body));
    let result = match (&gw.journal, &demo_id) {
        (Some(journal), Some(id)) => journal.scope(id, call).await,
        _ => call.await,
    };

    let res = match result {
        // An error answer the client stack gave up on (not retryable, or retries spent): in the
        // gateway's dialect, keeping kind, message, request id and retry hint.
        Ok(res) if gw.layers && res.status().as_u16() >= 400 => {
            translate(res, gw.dialect, MAX_ERROR_BODY)
                .await
                .map(Body::new)
        }
        Ok(res) => res,
        Err(err) => {
            if gw.log {
                eprintln!("gateway: {method} {path} -> upstream call failed: {err}");
            }
            return Err(upstream_failure(&err));
        }
    };
    let mut res = res;
    strip_hop_by_hop(res.headers_mut());
    *res.version_mut() = client_version;
    if gw.log {
        eprintln!(
            "gateway: {method} {path} -> {} ({} ms to headers)",
            res.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    Ok(res)
}

/// What the client is told when the upstream call failed without a response: the `ApiError`
/// behind it when there is one, else a `502`. The transport error itself is not sent.
fn upstream_failure(err: &BoxError) -> ApiError {
    let api = err
        .downcast_ref::<RetryError>()
        .and_then(RetryError::api_error)
        .or_else(|| err.downcast_ref::<ApiError>());
    match api {
        Some(api) => api.clone(),
        None => ApiError::new(ErrorKind::BadGateway, "the upstream could not be reached"),
    }
}

//! `mjpegsrc`: element glue. The network side lives in `reader.rs`.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use url::Url;

use super::auth::Credentials;
use super::http;
use super::pool::FramePool;
use super::reader::{self, Item, Shared};
use crate::runtime::{Canceller, RUNTIME, lock};

pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mjpegsrc",
        gst::DebugColorFlags::empty(),
        Some("MJPEG over HTTP source"),
    )
});

const DEFAULT_LOCATION: Option<&str> = None;
const DEFAULT_SSL_STRICT: bool = true;
const DEFAULT_TIMEOUT: u32 = 10;
const DEFAULT_CONNECT_TIMEOUT: u32 = 10;
const DEFAULT_RETRIES: i32 = -1;
const DEFAULT_RETRY_DELAY: u32 = 500;
const DEFAULT_RETRY_DELAY_MAX: u32 = 10_000;
const DEFAULT_MAX_FRAME_SIZE: u32 = 4 * 1024 * 1024;
const DEFAULT_POOL_SIZE: u32 = 8;
const MIN_POOL_SIZE: u32 = 2;
const DEFAULT_IS_LIVE: bool = true;

fn default_user_agent() -> String {
    format!("gst-mjpeg/{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Clone, Debug)]
struct Settings {
    location: Option<String>,
    user_id: Option<String>,
    user_pw: Option<String>,
    proxy: Option<String>,
    proxy_id: Option<String>,
    proxy_pw: Option<String>,
    user_agent: String,
    extra_headers: Option<gst::Structure>,
    cookies: Vec<String>,
    ssl_strict: bool,
    timeout: u32,
    connect_timeout: u32,
    retries: i32,
    retry_delay: u32,
    retry_delay_max: u32,
    max_frame_size: u32,
    pool_size: u32,
    is_live: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: DEFAULT_LOCATION.map(Into::into),
            user_id: None,
            user_pw: None,
            proxy: None,
            proxy_id: None,
            proxy_pw: None,
            user_agent: default_user_agent(),
            extra_headers: None,
            cookies: Vec::new(),
            ssl_strict: DEFAULT_SSL_STRICT,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_delay: DEFAULT_RETRY_DELAY,
            retry_delay_max: DEFAULT_RETRY_DELAY_MAX,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            pool_size: DEFAULT_POOL_SIZE,
            is_live: DEFAULT_IS_LIVE,
        }
    }
}

/// What exists between `start()` and `stop()`.
struct State {
    shared: Arc<Shared>,
    /// Built in `start()`, consumed when the reader is spawned.
    config: Option<reader::Config>,
    task: Option<tokio::task::JoinHandle<()>>,
    caps_dims: Option<Option<(u32, u32)>>,
    first_arrival: Option<Instant>,
    first_camera_ts: Option<f64>,
    last_camera_ts: Option<f64>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = self.shared.pool.set_active(false);
    }
}

#[derive(Default)]
pub struct MjpegSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    canceller: Canceller,
}

#[glib::object_subclass]
impl ObjectSubclass for MjpegSrc {
    const NAME: &'static str = "GstMjpegSrc";
    type Type = super::MjpegSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl MjpegSrc {
    fn set_location(&self, uri: Option<&str>) -> Result<(), glib::Error> {
        if self.obj().current_state() > gst::State::Ready {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "Changing the location of a running source is not supported",
            ));
        }
        let mut settings = lock(&self.settings);
        match uri {
            None => settings.location = None,
            Some(uri) => {
                let url = Url::parse(uri).map_err(|e| {
                    glib::Error::new(gst::URIError::BadUri, &format!("Invalid URI '{uri}': {e}"))
                })?;
                if url.scheme() != "http" && url.scheme() != "https" {
                    return Err(glib::Error::new(
                        gst::URIError::UnsupportedProtocol,
                        &format!("Unsupported URI scheme '{}'", url.scheme()),
                    ));
                }
                settings.location = Some(url.to_string());
            }
        }
        Ok(())
    }

    /// Build everything the reader needs from the settings.
    fn reader_config(settings: &Settings) -> Result<reader::Config, gst::ErrorMessage> {
        let location = settings
            .location
            .as_deref()
            .ok_or_else(|| gst::error_msg!(gst::ResourceError::Settings, ["No location set"]))?;
        let mut url = Url::parse(location).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["Invalid location {}: {}", location, e]
            )
        })?;

        // Credentials: the properties win over the URL's userinfo, which is
        // removed from the request URL either way.
        let url_user = percent_decode(url.username());
        let url_pw = url.password().map(percent_decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let user = settings
            .user_id
            .clone()
            .or((!url_user.is_empty()).then_some(url_user));
        let password = settings.user_pw.clone().or(url_pw).unwrap_or_default();
        let credentials = user.map(|user| Credentials { user, password });

        let mut http = http::Config::new(settings.ssl_strict);
        http.user_agent = settings.user_agent.clone();
        http.connect_timeout = (settings.connect_timeout > 0)
            .then(|| Duration::from_secs(settings.connect_timeout.into()));
        if let Some(proxy) = settings.proxy.as_deref().filter(|p| !p.is_empty()) {
            let with_scheme = if proxy.contains("://") {
                proxy.to_owned()
            } else {
                format!("http://{proxy}")
            };
            let mut proxy_url = Url::parse(&with_scheme).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    ["Invalid proxy {}: {}", proxy, e]
                )
            })?;
            if proxy_url.scheme() != "http" {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ["Only HTTP proxies are supported, not {}", proxy]
                ));
            }
            let id = settings
                .proxy_id
                .clone()
                .unwrap_or_else(|| percent_decode(proxy_url.username()));
            let pw = settings
                .proxy_pw
                .clone()
                .or_else(|| proxy_url.password().map(percent_decode))
                .unwrap_or_default();
            if !id.is_empty() {
                http.proxy_authorization = Some(
                    Credentials {
                        user: id,
                        password: pw,
                    }
                    .basic(),
                );
            }
            let _ = proxy_url.set_username("");
            let _ = proxy_url.set_password(None);
            http.proxy = Some(proxy_url);
        }
        if let Some(extra) = &settings.extra_headers {
            for (name, value) in extra.iter() {
                let value = match value.get::<String>() {
                    Ok(s) => s,
                    Err(_) => value
                        .transform::<String>()
                        .ok()
                        .and_then(|v| v.get::<String>().ok())
                        .unwrap_or_default(),
                };
                if name.contains([':', '\r', '\n']) || value.contains(['\r', '\n']) {
                    return Err(gst::error_msg!(
                        gst::ResourceError::Settings,
                        ["Invalid extra header {}", name]
                    ));
                }
                http.extra_headers.push((name.to_string(), value));
            }
        }
        if !settings.cookies.is_empty() {
            let cookie = settings.cookies.join("; ");
            if cookie.contains(['\r', '\n']) {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ["Invalid cookie"]
                ));
            }
            http.extra_headers.push(("Cookie".into(), cookie));
        }

        Ok(reader::Config {
            url,
            http,
            credentials,
            timeout: (settings.timeout > 0).then(|| Duration::from_secs(settings.timeout.into())),
            retries: settings.retries,
            retry_delay: Duration::from_millis(settings.retry_delay.into()),
            retry_delay_max: Duration::from_millis(settings.retry_delay_max.into()),
        })
    }

    /// Running time now, minus the time since `arrival`.
    fn running_time_at(&self, arrival: Instant, state: &mut State) -> Option<gst::ClockTime> {
        let obj = self.obj();
        match (obj.clock(), obj.base_time()) {
            (Some(clock), Some(base)) => {
                let now = clock.time();
                let since = gst::ClockTime::from_nseconds(arrival.elapsed().as_nanos() as u64);
                Some(now.saturating_sub(base).saturating_sub(since))
            }
            _ => {
                let first = *state.first_arrival.get_or_insert(arrival);
                Some(gst::ClockTime::from_nseconds(
                    arrival.saturating_duration_since(first).as_nanos() as u64,
                ))
            }
        }
    }

    fn stats(&self) -> gst::Structure {
        let location = lock(&self.settings).location.clone().unwrap_or_default();
        let state = lock(&self.state);
        let idle = reader::Stats::default();
        let (s, free) = match state.as_ref() {
            Some(state) => (
                Some(lock(&state.shared.stats)),
                state.shared.pool.free_buffers(),
            ),
            None => (None, 0),
        };
        let s = s.as_deref().unwrap_or(&idle);
        gst::Structure::builder("mjpegsrc-stats")
            .field("location", location)
            .field("frames-received", s.frames_received)
            .field("frames-pushed", s.frames_pushed)
            .field("frames-dropped", s.frames_dropped())
            .field("dropped-no-buffer", s.dropped_no_buffer)
            .field("dropped-too-big", s.dropped_too_big)
            .field("dropped-queue-full", s.dropped_queue_full)
            .field("overruns", s.overruns)
            .field("reconnects", s.reconnects)
            .field("bytes-received", s.bytes_received)
            .field("fps", s.fps())
            .field("skipped-parts", s.skipped_parts)
            .field("resyncs", s.resyncs)
            .field("last-reconnect-reason", s.last_reconnect_reason.as_str())
            .field("free-buffers", free)
            .field("connected", s.connected)
            .build()
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl ObjectImpl for MjpegSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("URL of the MJPEG stream (http:// or https://); user:password@ in the URL is used for authentication (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("user-id")
                    .nick("User ID")
                    .blurb("User name for Basic or Digest authentication (default: none, or the URL's user)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("user-pw")
                    .nick("User password")
                    .blurb("Password for Basic or Digest authentication (default: none, or the URL's password)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("proxy")
                    .nick("Proxy")
                    .blurb("HTTP proxy as host:port or http://host:port (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("proxy-id")
                    .nick("Proxy user ID")
                    .blurb("User name for proxy Basic authentication (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("proxy-pw")
                    .nick("Proxy user password")
                    .blurb("Password for proxy Basic authentication (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("user-agent")
                    .nick("User-Agent")
                    .blurb("Value of the User-Agent request header (default: gst-mjpeg/<version>)")
                    .default_value(Some(default_user_agent().as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("extra-headers")
                    .nick("Extra headers")
                    .blurb("Extra request headers as a GstStructure: each field name is a header name, its value the header value (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<Vec<String>>("cookies")
                    .nick("Cookies")
                    .blurb("Cookies sent with the request, each as name=value (default: none)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("ssl-strict")
                    .nick("SSL strict")
                    .blurb("Verify the server's TLS certificate; false accepts self-signed certificates (default: true)")
                    .default_value(DEFAULT_SSL_STRICT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("timeout")
                    .nick("Timeout")
                    .blurb("Seconds without receiving a byte after which the connection counts as stalled and is reopened; 0 = never (default: 10)")
                    .default_value(DEFAULT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("connect-timeout")
                    .nick("Connect timeout")
                    .blurb("Seconds allowed to connect and receive the response headers; 0 = no limit (default: 10)")
                    .default_value(DEFAULT_CONNECT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("retries")
                    .nick("Retries")
                    .blurb("Consecutive failed reconnect attempts before giving up with an error; -1 = retry forever (default: -1)")
                    .minimum(-1)
                    .default_value(DEFAULT_RETRIES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("retry-delay")
                    .nick("Retry delay")
                    .blurb("Milliseconds to wait before the first reconnect attempt; doubles on each further failure (default: 500)")
                    .default_value(DEFAULT_RETRY_DELAY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("retry-delay-max")
                    .nick("Maximum retry delay")
                    .blurb("Upper bound in milliseconds of the growing delay between reconnect attempts (default: 10000)")
                    .default_value(DEFAULT_RETRY_DELAY_MAX)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-frame-size")
                    .nick("Maximum frame size")
                    .blurb("Size in bytes of each pool buffer; a larger frame is dropped and counted (default: 4194304)")
                    .minimum(1024)
                    .default_value(DEFAULT_MAX_FRAME_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("pool-size")
                    .nick("Pool size")
                    .blurb("Number of frame buffers in the pool; when all are in use, new frames are dropped and counted (default: 8)")
                    .minimum(MIN_POOL_SIZE)
                    .maximum(1024)
                    .default_value(DEFAULT_POOL_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Is live")
                    .blurb("Act as a live source: timestamps are running time at arrival and nothing is pushed in PAUSED (default: true)")
                    .default_value(DEFAULT_IS_LIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Counters of the session as a mjpegsrc-stats structure: frames-received, frames-pushed, frames-dropped (= dropped-no-buffer + dropped-too-big + dropped-queue-full), overruns (runs of consecutive drops), reconnects, bytes-received, skipped-parts, resyncs (guint64), fps (gdouble, frames/s over the last 2 s), free-buffers (guint), connected (gboolean), location, last-reconnect-reason (string) (read-only)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let running = lock(&self.state).is_some();
        if running && pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY) {
            gst::error!(
                CAT,
                imp = self,
                "Cannot change property '{}' while running, keeping the old value",
                pspec.name()
            );
            return;
        }
        if pspec.name() == "location" {
            let uri = value
                .get::<Option<String>>()
                .expect("type checked upstream");
            if let Err(e) = self.set_location(uri.as_deref()) {
                gst::error!(CAT, imp = self, "Failed to set location: {}", e);
            }
            return;
        }
        let mut s = lock(&self.settings);
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|v| !v.is_empty())
        };
        match pspec.name() {
            "user-id" => s.user_id = string(),
            "user-pw" => s.user_pw = string(),
            "proxy" => s.proxy = string(),
            "proxy-id" => s.proxy_id = string(),
            "proxy-pw" => s.proxy_pw = string(),
            "user-agent" => s.user_agent = string().unwrap_or_else(default_user_agent),
            "extra-headers" => s.extra_headers = value.get().expect("type checked upstream"),
            "cookies" => s.cookies = value.get::<Vec<String>>().expect("type checked upstream"),
            "ssl-strict" => s.ssl_strict = value.get().expect("type checked upstream"),
            "timeout" => s.timeout = value.get().expect("type checked upstream"),
            "connect-timeout" => s.connect_timeout = value.get().expect("type checked upstream"),
            "retries" => s.retries = value.get().expect("type checked upstream"),
            "retry-delay" => s.retry_delay = value.get().expect("type checked upstream"),
            "retry-delay-max" => s.retry_delay_max = value.get().expect("type checked upstream"),
            "max-frame-size" => s.max_frame_size = value.get().expect("type checked upstream"),
            "pool-size" => s.pool_size = value.get().expect("type checked upstream"),
            "is-live" => {
                s.is_live = value.get().expect("type checked upstream");
                let live = s.is_live;
                drop(s);
                self.obj().set_live(live);
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "location" => s.location.to_value(),
            "user-id" => s.user_id.to_value(),
            "user-pw" => s.user_pw.to_value(),
            "proxy" => s.proxy.to_value(),
            "proxy-id" => s.proxy_id.to_value(),
            "proxy-pw" => s.proxy_pw.to_value(),
            "user-agent" => s.user_agent.to_value(),
            "extra-headers" => s.extra_headers.to_value(),
            "cookies" => s.cookies.to_value(),
            "ssl-strict" => s.ssl_strict.to_value(),
            "timeout" => s.timeout.to_value(),
            "connect-timeout" => s.connect_timeout.to_value(),
            "retries" => s.retries.to_value(),
            "retry-delay" => s.retry_delay.to_value(),
            "retry-delay-max" => s.retry_delay_max.to_value(),
            "max-frame-size" => s.max_frame_size.to_value(),
            "pool-size" => s.pool_size.to_value(),
            "is-live" => s.is_live.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(DEFAULT_IS_LIVE);
        obj.set_format(gst::Format::Time);
        obj.set_automatic_eos(false);
    }
}

impl GstObjectImpl for MjpegSrc {}

impl ElementImpl for MjpegSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "MJPEG HTTP source",
                "Source/Network/HTTP",
                "Reads an MJPEG stream (multipart/x-mixed-replace or raw JPEGs) over HTTP(S), \
                 pushes JPEG frames from a bounded pool, drops frames instead of adding latency, \
                 and reconnects by itself",
                "gst-mjpeg contributors",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("image/jpeg").build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid pad template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl URIHandlerImpl for MjpegSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &["http", "https"]
    }

    fn uri(&self) -> Option<String> {
        lock(&self.settings).location.clone()
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        self.set_location(Some(uri))
    }
}

impl BaseSrcImpl for MjpegSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let config = Self::reader_config(&settings)?;
        let pool =
            FramePool::new_active(settings.max_frame_size, settings.pool_size).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::NoSpaceLeft,
                    [
                        "Could not allocate {} buffers of {} bytes: {}",
                        settings.pool_size,
                        settings.max_frame_size,
                        e
                    ]
                )
            })?;
        gst::debug!(CAT, imp = self, "Starting on {}", config.url);
        *lock(&self.state) = Some(State {
            shared: Arc::new(Shared::new(pool)),
            config: Some(config),
            task: None,
            caps_dims: None,
            first_arrival: None,
            first_camera_ts: None,
            last_camera_ts: None,
        });
        self.canceller.reset();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Dropping the state aborts the reader task and deactivates the pool.
        let state = lock(&self.state).take();
        drop(state);
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.canceller.cancel();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.canceller.reset();
        Ok(())
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        // Caps carry the frame size, known only from the first frame:
        // create() sets them then. Nothing to agree on before.
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let state = lock(&self.state);
        let Some(state) = state.as_ref() else {
            return Ok(());
        };
        let pool = state.shared.pool.clone();
        let (_, size, count, _) = pool.config().params().unwrap_or((None, 0, 0, 0));
        // Frames are filled by the network task before caps exist, so the
        // pool is the element's own. What downstream asks for is its
        // minimum number of held buffers: warn when the pool cannot cover it.
        let wanted = query
            .allocation_pools()
            .map(|(_, _, min, _)| min)
            .max()
            .unwrap_or(0);
        if wanted + reader::QUEUE_LEN as u32 + 1 > count {
            gst::warning!(
                CAT,
                imp = self,
                "Downstream holds up to {} buffers; pool-size {} leaves little room, frames will be dropped",
                wanted,
                count
            );
        }
        let pool = pool.upcast::<gst::BufferPool>();
        if query.allocation_pools().len() == 0 {
            query.add_allocation_pool(Some(&pool), size, count, count);
        } else {
            query.set_nth_allocation_pool(0, Some(&pool), size, count, count);
        }
        Ok(())
    }
}

impl PushSrcImpl for MjpegSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let shared = {
            let mut state = lock(&self.state);
            let Some(state) = state.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            // The network is opened on the first create(): for a live
            // source that is PLAYING, so no frame is read to be thrown away.
            if let Some(config) = state.config.take() {
                let element = self.obj().upcast_ref::<gst::Element>().downgrade();
                state.task =
                    Some(RUNTIME.spawn(reader::run(config, state.shared.clone(), element)));
            }
            state.shared.clone()
        };

        let item = match self.canceller.block_on(shared.next_item()) {
            Ok(item) => item,
            Err(_) => {
                gst::debug!(CAT, imp = self, "Unlocked while waiting for a frame");
                return Err(gst::FlowError::Flushing);
            }
        };
        let frame = match item {
            Item::Frame(frame) => frame,
            Item::Fatal(err) => {
                self.post_error_message(err);
                return Err(gst::FlowError::Error);
            }
        };

        let do_timestamp = self.obj().does_timestamp();
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let pts = (!do_timestamp)
            .then(|| self.running_time_at(frame.arrival, state))
            .flatten();

        // Renegotiate when the frame size changes (and for the first frame).
        let new_caps = if state.caps_dims != Some(frame.dims) {
            state.caps_dims = Some(frame.dims);
            let mut caps = gst::Caps::builder("image/jpeg");
            if let Some((w, h)) = frame.dims {
                caps = caps.field("width", w as i32).field("height", h as i32);
            }
            Some(caps.field("framerate", gst::Fraction::new(0, 1)).build())
        } else {
            None
        };

        let mut buffer = frame.buffer;
        {
            let buf = buffer.make_mut();
            buf.set_pts(pts);
            buf.set_offset(frame.seq);
            if frame.discont {
                buf.set_flags(gst::BufferFlags::DISCONT);
            }
            if let Some(ts) = frame.camera_ts {
                // Camera clocks are unknown: carry the time relative to
                // the first stamp seen; a jump backwards (reboot) restarts it.
                let first = match (state.first_camera_ts, state.last_camera_ts) {
                    (Some(first), Some(last)) if ts >= last => first,
                    _ => ts,
                };
                state.first_camera_ts = Some(first);
                state.last_camera_ts = Some(ts);
                let rel = gst::ClockTime::from_nseconds(((ts - first).max(0.0) * 1e9) as u64);
                static CAMERA_CAPS: LazyLock<gst::Caps> =
                    LazyLock::new(|| gst::Caps::new_empty_simple("timestamp/x-mjpeg-camera"));
                gst::ReferenceTimestampMeta::add(buf, &CAMERA_CAPS, rel, gst::ClockTime::NONE);
            }
        }
        lock(&state.shared.stats).frames_pushed += 1;
        drop(guard);

        if let Some(caps) = new_caps {
            gst::debug!(CAT, imp = self, "Caps {}", caps);
            if self.obj().set_caps(&caps).is_err() {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["Downstream refused caps {}", caps]
                );
                return Err(gst::FlowError::NotNegotiated);
            }
        }
        gst::trace!(CAT, imp = self, "Pushing frame {} pts {:?}", frame.seq, pts);
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}

//! The admin console (`/admin`): its policy, CSRF checks, escaping and headers over HTTP, and a
//! walk through it in headless Chromium (login, user search, one user, their audit trail) that
//! keeps a screenshot in `target/test-artefacts/admin-console.png`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{Account, Api, PASSWORD, Reply};
use serde_json::{Value, json};
use store::testing::TestStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCESS_COOKIE: &str = "stridelog_console_access";
const XSS_NAME: &str = "<script>alert(1)</script>";

fn html(r: &Reply) -> &str {
    r.body.as_str().unwrap_or("")
}

async fn get(api: &Api, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method("GET").uri(path);
    if let Some(t) = token {
        req = req.header("cookie", format!("{ACCESS_COOKIE}={t}"));
    }
    api.raw(req.body(Body::empty()).unwrap()).await
}

async fn post_form(api: &Api, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    api.raw(req.body(Body::from(body)).unwrap()).await
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn assert_console_headers(r: &Reply) {
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["cache-control"], "no-store");
}

async fn admin_and_athletes(api: &Api) -> (Account, Account, Account, Account) {
    let admin = api.register("admin@example.org", "athlete").await;
    api.state
        .auth
        .db
        .set_role(admin.id, domain::athlete::Role::Admin)
        .await
        .unwrap();
    let ada = api.register("ada@example.org", "athlete").await;
    let bob = api.register("bob@example.org", "athlete").await;
    let r = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": "mallory@example.org", "password": PASSWORD,
                        "display_name": XSS_NAME})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mallory = Account {
        id: r.body["account_id"].as_str().unwrap().parse().unwrap(),
        email: "mallory@example.org".into(),
        access: r.body["access_token"].as_str().unwrap().into(),
        refresh: r.body["refresh_token"].as_str().unwrap().into(),
    };
    let run = api
        .send(
            "POST",
            "/v1/activities",
            Some(&ada.access),
            Some(json!({"sport": "run", "start_time": "2026-03-02T07:00:00Z",
                        "distance_m": 8000.0, "moving_time_s": 2700.0})),
        )
        .await;
    assert_eq!(run.status, 201, "{}", run.body);
    api.state
        .projections
        .wait_for(
            &["profile", "admin_metrics", "audit"],
            run.position(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    (admin, ada, bob, mallory)
}

async fn policy_csrf_escaping_and_headers(t: TestStore) {
    let api = Api::start(t).await;
    let (admin, ada, _bob, mallory) = admin_and_athletes(&api).await;

    // Anonymous: to the login page, with the console's headers on the redirect too.
    let r = get(&api, "/admin/users", None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/admin/login");
    assert_console_headers(&r);
    // A bearer token is the API's credential, not the console's.
    let r = api
        .send("GET", "/admin/users", Some(&admin.access), None)
        .await;
    assert_eq!(r.status, 303);

    // An athlete's session: a 403 page.
    let r = get(&api, "/admin/users", Some(&ada.access)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html(&r).contains("Only admin and owner accounts"));
    assert_console_headers(&r);

    // The admin: users, with the hostile display name as text.
    let r = get(&api, "/admin/users", Some(&admin.access)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_console_headers(&r);
    let page = html(&r);
    assert!(page.contains("ada@example.org"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains(XSS_NAME));
    let r = get(
        &api,
        &format!("/admin/users/{}", mallory.id),
        Some(&admin.access),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html(&r).contains(XSS_NAME));

    // Bad search input: an error on the page.
    let r = get(
        &api,
        "/admin/users?active_within_days=0",
        Some(&admin.access),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(html(&r).contains("active_within_days"));

    // CSRF: missing or wrong refuses, and nothing changes.
    let cookie = format!("{ACCESS_COOKIE}={}", admin.access);
    let suspend = format!("/admin/users/{}/suspend", ada.id);
    for form in [
        vec![("reason", "other")],
        vec![("reason", "other"), ("csrf", "0000")],
    ] {
        let r = post_form(&api, &suspend, Some(&cookie), &form).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(html(&r).contains("nothing was changed"));
        let a = api.state.auth.db.account(ada.id).await.unwrap().unwrap();
        assert!(!a.suspended);
    }
    // Another session's token is wrong too.
    let other = get(&api, "/admin/users", Some(&mallory.access)).await;
    let foreign = csrf_of(html(&other));
    let r = post_form(
        &api,
        &suspend,
        Some(&cookie),
        &[("reason", "other"), ("csrf", &foreign)],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        !api.state
            .auth
            .db
            .account(ada.id)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );

    // With this session's token: suspended, then reinstated; a bad reason changes nothing.
    let user_page = get(
        &api,
        &format!("/admin/users/{}", ada.id),
        Some(&admin.access),
    )
    .await;
    let csrf = csrf_of(html(&user_page));
    let r = post_form(
        &api,
        &suspend,
        Some(&cookie),
        &[("reason", "because"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        !api.state
            .auth
            .db
            .account(ada.id)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );
    let r = post_form(
        &api,
        &suspend,
        Some(&cookie),
        &[("reason", "other"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        api.state
            .auth
            .db
            .account(ada.id)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );
    let r = post_form(
        &api,
        &format!("/admin/users/{}/reinstate", ada.id),
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !api.state
            .auth
            .db
            .account(ada.id)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );

    // Impersonation: the token is shown once; a bad reason code is an error on the page.
    let imp = format!("/admin/users/{}/impersonate", ada.id);
    let r = post_form(
        &api,
        &imp,
        Some(&cookie),
        &[("reason", "Bad Reason"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = post_form(
        &api,
        &imp,
        Some(&cookie),
        &[("reason", "support_ticket"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(html(&r).contains("Shown once"));

    // Audit, health, metrics and the catalogue page render.
    let r = get(
        &api,
        &format!("/admin/users/{}/audit", ada.id),
        Some(&admin.access),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("ActivityRecorded"));
    let r = get(
        &api,
        &format!("/admin/users/{}/audit?event_type=ActivityRecorded", ada.id),
        Some(&admin.access),
    )
    .await;
    assert!(html(&r).contains("ActivityRecorded"));
    assert!(!html(&r).contains("AthleteRegistered"));
    for path in ["/admin/health", "/admin/metrics", "/admin/aggregates"] {
        let r = get(&api, path, Some(&admin.access)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert!(html(&get(&api, "/admin/metrics", Some(&admin.access)).await).contains("<svg"));
    // The aggregate catalogue, every query a table; groups this small are suppressed.
    let page = get(&api, "/admin/aggregates", Some(&admin.access)).await;
    for id in [
        "athletes_by_age_band_and_sex",
        "median_ef_by_age_band_and_sex",
        "share_with_sleep_finding",
    ] {
        assert!(html(&page).contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html(&page).contains("fewer than 10"));

    // The login form: its own CSRF cookie, the API's credential checks.
    let login = get(&api, "/admin/login", None).await;
    assert_eq!(login.status, 200);
    let set = login.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin")
    );
    let login_cookie = set.split(';').next().unwrap().to_string();
    let token = csrf_of(html(&login));
    let r = post_form(
        &api,
        "/admin/login",
        None,
        &[
            ("email", "admin@example.org"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "no login cookie: {}", r.body);
    let r = post_form(
        &api,
        "/admin/login",
        Some(&login_cookie),
        &[
            ("email", "admin@example.org"),
            ("password", "wrong password!"),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(html(&r).contains("Email or password is incorrect"));
    let r = post_form(
        &api,
        "/admin/login",
        Some(&login_cookie),
        &[
            ("email", "bob@example.org"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "an athlete: {}", r.body);
    let r = post_form(
        &api,
        "/admin/login",
        Some(&login_cookie),
        &[
            ("email", "admin@example.org"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers["location"], "/admin/users");
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .filter(|c| !c.ends_with('='))
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let jar = cookies.join("; ");
    let mut req = Request::builder().uri("/admin/users");
    req = req.header("cookie", &jar);
    let r = api.raw(req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, 200);
    // Only the refresh cookie: the session is renewed through the API's refresh.
    let refresh_only = cookies
        .iter()
        .find(|c| c.starts_with("stridelog_console_refresh="))
        .unwrap();
    let mut req = Request::builder().uri("/admin/users");
    req = req.header("cookie", refresh_only);
    let r = api.raw(req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
    // Logout needs the session's CSRF token, then ends the session.
    let csrf = csrf_of(html(&r));
    let access = cookies
        .iter()
        .find(|c| c.starts_with(ACCESS_COOKIE))
        .unwrap()
        .clone();
    let renewed: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let jar = renewed.join("; ");
    let r = post_form(&api, "/admin/logout", Some(&jar), &[]).await;
    assert_eq!(r.status, 403);
    let r = post_form(&api, "/admin/logout", Some(&jar), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    let r = api
        .raw(
            Request::builder()
                .uri("/admin/users")
                .header("cookie", &access)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 303, "the session ended");
    api.stop().await;
}

// --- headless Chromium over WebDriver ----------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver's W3C WebDriver API, over one HTTP/1.1 request per connection.
struct Driver {
    port: u16,
    session: String,
    child: std::process::Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        // chromedriver may keep the connection open: read by Content-Length, not to EOF.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| raw.len() >= end + 4 + len) {
                raw.truncate(end + 4 + length.unwrap_or(0));
                break;
            }
        }
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw.len(), |e| e + 4);
        Ok::<_, std::io::Error>(serde_json::from_slice(&raw[end..]).unwrap_or(Value::Null))
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| std::io::Error::other(format!("{method} {path}: no answer in 60 s")))?
}

impl Driver {
    async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: the console's browser test needs Debian's chromium and \
                 chromium-driver (`apt-get install -y chromium chromium-driver`; .ci/run \
                 installs them)"
            );
        }
        let port = free_port();
        let child = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(v) = http(port, "GET", "/status", None).await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).await.unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Self {
            port,
            session,
            child,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let v = http(self.port, method, &path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("{method} {path}: {v}");
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's URL once `want` accepts it: a click that navigates returns before the new
    /// page is there, and an element found on the old one goes stale.
    async fn wait_url(&self, want: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            last = self.url().await;
            if want(&last) && self.ready().await {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the browser stayed at {last}");
    }

    async fn ready(&self) -> bool {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.readyState", "args": []})),
        )
        .await
            == "complete"
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    async fn quit(mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artefact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes through a temporary file, so the two backends' runs never interleave their bytes.
fn keep(name: &str, png: &[u8]) -> PathBuf {
    let path = artefact(name);
    let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, png).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn a_browser_logs_in_searches_and_reads_an_audit_trail(t: TestStore) {
    let api = Api::start(t).await;
    let (_admin, ada, _bob, _mallory) = admin_and_athletes(&api).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let base = format!("http://{addr}");
    let browser = Driver::start().await;

    browser.goto(&format!("{base}/admin")).await;
    assert_eq!(browser.url().await, format!("{base}/admin/login"));
    browser
        .type_into("input[name=email]", "admin@example.org")
        .await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_url(|u| u == format!("{base}/admin/users"))
        .await;

    browser.type_into("input[name=q]", "ada").await;
    browser.click("main form button[type=submit]").await;
    browser.wait_url(|u| u.contains("q=ada")).await;
    let table = browser.text("#users").await;
    assert!(table.contains("ada@example.org"), "{table}");
    assert!(!table.contains("bob@example.org"), "{table}");

    browser.click("#users a").await;
    browser
        .wait_url(|u| u == format!("{base}/admin/users/{}", ada.id))
        .await;
    assert_eq!(browser.text("#email").await, "ada@example.org");

    browser.click("#audit-link").await;
    browser.wait_url(|u| u.contains("/audit")).await;
    let trail = browser.text("#audit").await;
    for event in ["AthleteRegistered", "ActivityRecorded"] {
        assert!(trail.contains(event), "{event} in {trail}");
    }
    let png = browser.screenshot().await;
    assert!(png.len() > 8 && png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let path = keep("admin-console.png", &png);
    assert!(std::fs::metadata(&path).unwrap().len() > 0);

    browser.goto(&format!("{base}/admin/metrics")).await;
    browser.find("svg#events-per-type").await;
    keep("admin-console-metrics.png", &browser.screenshot().await);

    browser.quit().await;
    server.abort();
    api.stop().await;
}

store::on_both_backends!(
    policy_csrf_escaping_and_headers,
    a_browser_logs_in_searches_and_reads_an_audit_trail
);

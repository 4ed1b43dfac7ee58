//! The console's pages. maud escapes every `(value)` it interpolates, so names and emails that
//! users chose are rendered as text, never as markup.

use axum::http::StatusCode;
use axum::response::Html;
use chrono::{DateTime, Utc};
use identity::db::role_str;
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use uuid::Uuid;

use super::{AuditSearch, Session, UserSearch, svg};
use crate::problem::Problem;
use crate::routes::admin::{AuditEntryView, GrantView, UserPage, UserSummary};
use crate::routes::impersonation::ImpersonationSession;

const ROLES: [&str; 4] = ["athlete", "coach", "admin", "owner"];
const SUSPENSION_REASONS: [&str; 4] = [
    "terms_violation",
    "security_concern",
    "holder_request",
    "other",
];

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn layout(session: Option<&Session>, title: &str, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · stridelog admin" }
                link rel="stylesheet" href="/admin/console.css";
            }
            body {
                header {
                    strong { "stridelog admin" }
                    @if let Some(s) = session {
                        nav {
                            a href="/admin/users" { "Users" }
                            a href="/admin/health" { "Health" }
                            a href="/admin/metrics" { "Metrics" }
                            a href="/admin/aggregates" { "Aggregates" }
                        }
                        form.inline method="post" action="/admin/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span.muted { (role_str(s.caller.role)) " " }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(page.into_string())
}

fn problem_box(p: &Problem) -> Markup {
    html! {
        div.problem role="alert" {
            strong { (p.title) }
            @if let Some(d) = &p.detail { " " (d) }
            @if !p.errors.is_empty() {
                ul { @for e in &p.errors { li { code { (e.field) } ": " (e.detail) } } }
            }
        }
    }
}

pub(super) fn problem(session: Option<&Session>, p: &Problem) -> (StatusCode, Html<String>) {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = html! {
        (problem_box(p))
        p { a href="/admin/users" { "Back to users" } }
    };
    (
        status,
        layout(session, &format!("{} {}", p.status, p.title), body),
    )
}

pub(super) fn forbidden(session: &Session) -> (StatusCode, Html<String>) {
    let p = Problem::forbidden("Only admin and owner accounts may use the console.");
    let body = html! {
        (problem_box(&p))
        form method="post" action="/admin/logout" {
            input type="hidden" name="csrf" value=(session.csrf);
            button type="submit" { "Log out" }
        }
    };
    (StatusCode::FORBIDDEN, layout(None, "403 Forbidden", body))
}

pub(super) fn login(csrf: &str, error: Option<&Problem>) -> Html<String> {
    let body = html! {
        @if let Some(p) = error { (problem_box(p)) }
        form.stack method="post" action="/admin/login" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Email" input type="email" name="email" required autocomplete="username"; }
            label { "Password" input type="password" name="password" required autocomplete="current-password"; }
            button type="submit" { "Log in" }
        }
    };
    layout(None, "Log in", body)
}

pub(super) fn users(
    session: &Session,
    search: &UserSearch,
    page: Option<&UserPage>,
    error: Option<&Problem>,
) -> Html<String> {
    let body = html! {
        form.row method="get" action="/admin/users" {
            label { "Search " input type="search" name="q" value=[search.q.as_deref()] placeholder="email prefix or name"; }
            label { "Role "
                select name="role" {
                    option value="" { "any" }
                    @for r in ROLES {
                        option value=(r) selected[search.role.as_deref() == Some(r)] { (r) }
                    }
                }
            }
            label { "Active within " input type="number" name="active_within_days" min="1" max="3660"
                value=[search.active_within_days.as_deref()]; " days" }
            button type="submit" { "Search" }
        }
        @if let Some(p) = error { (problem_box(p)) }
        @if let Some(page) = page {
            p.muted { (page.users.len()) " shown" }
            table id="users" {
                thead { tr { th { "Email" } th { "Name" } th { "Role" } th { "Status" } th { "Registered" } th { "Last active" } } }
                tbody {
                    @for u in &page.users {
                        tr {
                            td { a href={ "/admin/users/" (u.account_id) } { (u.email) } }
                            td { (u.display_name.as_deref().unwrap_or("")) }
                            td { (role_str(u.role)) }
                            td { (u.status) }
                            td { (u.registered_at.format("%Y-%m-%d")) }
                            td { @if let Some(d) = u.last_active_date { (d) } }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next_cursor {
                p { a rel="next" href=(search.href(Some(next))) { "Next page" } }
            }
        }
    };
    layout(Some(session), "Users", body)
}

fn grants(title: &str, list: &[GrantView]) -> Markup {
    html! {
        @if !list.is_empty() {
            h2 { (title) }
            table {
                thead { tr { th { "Account" } th { "Scope" } th { "Granted" } } }
                tbody { @for g in list { tr {
                    td { a href={ "/admin/users/" (g.account_id) } { (g.account_id) } }
                    td { (serde_json::to_value(g.scope).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                    td { (time(&g.granted_at)) }
                } } }
            }
        }
    }
}

pub(super) fn user(session: &Session, u: &UserSummary, done: Option<&str>) -> Html<String> {
    let base = format!("/admin/users/{}", u.account_id);
    let body = html! {
        @match done {
            Some("suspended") => p.notice role="status" { "Suspended; every session ended." },
            Some("reinstated") => p.notice role="status" { "Reinstated." },
            _ => {},
        }
        dl.summary {
            dt { "Email" } dd id="email" { (u.email) }
            dt { "Name" } dd id="display-name" { (u.display_name.as_deref().unwrap_or("")) }
            dt { "Role" } dd { (role_str(u.role)) }
            dt { "Status" } dd id="status" { (u.status) }
            dt { "Registered" } dd { (time(&u.registered_at)) }
            dt { "Last active" } dd { @if let Some(d) = u.last_active_date { (d) } @else { "never" } }
            dt { "Live sessions" } dd { (u.live_sessions) }
            dt { "Account id" } dd { code { (u.account_id) } }
        }
        p { a id="audit-link" href={ (base) "/audit" } { "Audit trail" } }
        h2 { "Events" }
        table {
            thead { tr { th { "Type" } th.num { "Events" } } }
            tbody { @for e in &u.events { tr { td { (e.event_type) } td.num { (e.events) } } } }
        }
        h2 { "Recent sessions" }
        table {
            thead { tr { th { "Started" } th { "Expires" } th { "Ended" } th { "Why" } } }
            tbody { @for s in &u.recent_sessions { tr {
                td { (time(&s.created_at)) }
                td { (time(&s.expires_at)) }
                td { @if let Some(t) = &s.ended_at { (time(t)) } }
                td { (s.ended_because.as_deref().unwrap_or("")) }
            } } }
        }
        (grants("Coaches granted access", &u.coaches))
        (grants("Athletes coached", &u.coached_athletes))
        h2 { "Actions" }
        @if u.status == "suspended" {
            form.row method="post" action={ (base) "/reinstate" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button type="submit" { "Reinstate" }
            }
        } @else {
            form.row method="post" action={ (base) "/suspend" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label { "Reason "
                    select name="reason" required {
                        @for r in SUSPENSION_REASONS { option value=(r) { (r) } }
                    }
                }
                button type="submit" { "Suspend" }
            }
        }
        form.row method="post" action={ (base) "/impersonate" } {
            input type="hidden" name="csrf" value=(session.csrf);
            label { "Reason code " input type="text" name="reason" required maxlength="40"
                pattern="[a-z][a-z0-9_]*" placeholder="support_ticket"; }
            button type="submit" { "Impersonate (15 min)" }
        }
    };
    layout(Some(session), &u.email, body)
}

pub(super) fn impersonation(session: &Session, s: &ImpersonationSession) -> Html<String> {
    let body = html! {
        p { "Shown once. Send it as " code { "Authorization: Bearer <token>" } " to the API's "
            code { "/v1" } " routes until " (time(&s.expires_at)) "; end it early with "
            code { "DELETE /v1/me/impersonation" } ". Every act is recorded with your id." }
        textarea.token readonly rows="4" { (s.access_token) }
        p { a href={ "/admin/users/" (s.athlete_id) } { "Back to the user" } }
    };
    layout(Some(session), "Impersonation session", body)
}

pub(super) fn audit(
    session: &Session,
    email: &str,
    id: Uuid,
    search: &AuditSearch,
    trail: Result<&Vec<AuditEntryView>, &Problem>,
) -> Html<String> {
    let body = html! {
        p { a href={ "/admin/users/" (id) } { (email) } }
        form.row method="get" action={ "/admin/users/" (id) "/audit" } {
            label { "Since " input type="date" name="since" value=[search.since.as_deref()]; }
            label { "Actor " input type="text" name="actor" size="36" placeholder="account id" value=[search.actor.as_deref()]; }
            label { "Event type " input type="text" name="event_type" placeholder="ActivityRecorded" value=[search.event_type.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @match trail {
            Err(p) => (problem_box(p)),
            Ok(entries) => {
                p.muted { (entries.len()) " entries, oldest first" }
                table id="audit" {
                    thead { tr { th.num { "Position" } th { "Recorded" } th { "Event" } th { "Actor" } th { "Impersonator" } th { "Stream" } } }
                    tbody { @for e in entries { tr {
                        td.num { (e.position) }
                        td { (time(&e.recorded_at)) }
                        td.event { (e.event_type) }
                        td { (e.actor_role) @if let Some(a) = &e.actor_id { " " code { (a) } } }
                        td { @if let Some(a) = &e.impersonator_id { code { (a) } } }
                        td { code { (e.stream) } }
                    } } }
                }
            }
        }
    };
    layout(Some(session), "Audit trail", body)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A table of the objects in `rows`, one column per key.
fn value_table(id: &str, rows: &Value, columns: &[&str]) -> Markup {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    html! {
        @if rows.is_empty() {
            p.muted { "none" }
        } @else {
            table id=(id) {
                thead { tr { @for c in columns { th { (c.replace('_', " ")) } } } }
                tbody { @for r in rows { tr { @for c in columns {
                    @let v = &r[*c];
                    @if v.is_number() { td.num { (cell(v)) } } @else { td { (cell(v)) } }
                } } } }
            }
        }
    }
}

pub(super) fn health(session: &Session, h: &Value) -> Html<String> {
    let body = html! {
        dl.summary {
            dt { "Store" } dd { (cell(&h["backend"])) }
            dt { "Schema version" } dd { (cell(&h["schema_version"])) }
            dt { "Horizon lag" } dd { (cell(&h["horizon_lag_s"])) " s" }
        }
        h2 { "Projections" }
        (value_table("projections", &h["projections"], &["name", "state", "active_version", "checkpoint_position", "events_applied", "positions_behind", "seconds_behind", "skipped_events"]))
        h2 { "Skipped events" }
        (value_table("skipped", &h["skipped_events"], &["projection", "position", "event_type", "reason", "skipped_at"]))
        h2 { "Workers" }
        (value_table("workers", &h["workers"], &["name", "state", "since", "restarts"]))
        h2 { "Queues" }
        (value_table("queues", &h["queues"], &["queue", "state", "jobs", "oldest_age_s"]))
        h2 { "Pools" }
        (value_table("pools", &h["pools"], &["pool", "size", "idle", "max"]))
    };
    layout(Some(session), "Health", body)
}

fn series(rows: &Value, label: &str, value: &str) -> Vec<(String, f64)> {
    rows.as_array()
        .map(|a| {
            a.iter()
                .map(|r| (cell(&r[label]), r[value].as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every day from `from` to `to`, with the series' value or 0: a day without sign-ups is a
/// bar of zero, not a missing bar.
fn daily(m: &Value, rows: &Value, value: &str) -> Vec<(String, f64)> {
    let parse = |k: &str| {
        m[k].as_str()
            .and_then(|s| s.parse::<chrono::NaiveDate>().ok())
    };
    let known: std::collections::HashMap<String, f64> =
        series(rows, "date", value).into_iter().collect();
    let (Some(from), Some(to)) = (parse("from"), parse("to")) else {
        return series(rows, "date", value);
    };
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let k = d.to_string();
            let v = known.get(&k).copied().unwrap_or(0.0);
            (k, v)
        })
        .collect()
}

pub(super) fn metrics(session: &Session, m: &Value) -> Html<String> {
    let mut per_type: std::collections::BTreeMap<String, f64> = Default::default();
    for (t, n) in series(&m["events_per_type"], "event_type", "events") {
        *per_type.entry(t).or_default() += n;
    }
    let mut per_type: Vec<(String, f64)> = per_type.into_iter().collect();
    per_type.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shares: Vec<(String, f64)> = series(&m["logging"]["shares"], "kind", "share_fraction")
        .into_iter()
        .map(|(k, f)| (k, f * 100.0))
        .collect();
    let body = html! {
        form.row method="get" action="/admin/metrics" {
            label { "From " input type="date" name="from" value=(cell(&m["from"])); }
            label { "To " input type="date" name="to" value=(cell(&m["to"])); }
            button type="submit" { "Show" }
        }
        h2 { "Sign-ups per day" }
        (svg::bars("signups", &daily(m, &m["signups"], "signups")))
        h2 { "Active athletes per day" }
        (svg::line("daily-active", &daily(m, &m["daily_active"], "active_athletes")))
        h2 { "Active athletes per ISO week" }
        (svg::bars("weekly-active", &series(&m["weekly_active"], "iso_week", "active_athletes")))
        h2 { "Events per type" }
        (svg::hbars("events-per-type", &per_type, ""))
        h2 { "Athletes logging each kind of data" }
        p.muted { (cell(&m["logging"]["registered_athletes"])) " registered athletes" }
        (svg::hbars("logging", &shares, "%"))
    };
    layout(Some(session), "Metrics", body)
}

pub(super) fn aggregates(
    session: &Session,
    results: &[crate::routes::aggregates::AggregateResult],
) -> Html<String> {
    let body = html! {
        p.muted { "Counts across athletes only. A group of fewer than "
            (crate::routes::aggregates::MIN_ATHLETES)
            " athletes is suppressed: neither its count nor its value is shown." }
        @for r in results {
            h2 { (r.query.title) }
            p.muted { (r.query.value) }
            table id=(r.query.id) {
                thead { tr {
                    @for d in r.query.dimensions { th { (d) } }
                    th { "athletes" } th { "value" }
                } }
                tbody {
                    @for c in &r.cells {
                        tr {
                            @for g in &c.group { td { (g) } }
                            @if c.suppressed {
                                td.muted { "fewer than " (r.min_athletes) } td.muted { "–" }
                            } @else {
                                td { (c.athletes.unwrap_or_default()) }
                                td { (c.value.map(|v| format!("{v:.3}")).unwrap_or_default()) }
                            }
                        }
                    }
                    @if r.cells.is_empty() {
                        tr { td colspan="3" { "No athletes to count yet." } }
                    }
                }
            }
        }
    };
    layout(Some(session), "Aggregates", body)
}

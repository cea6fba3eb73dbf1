//! The web portal: server-rendered pages over the same store the API
//! reads, with templates and assets embedded in the binary. htmx makes the
//! search box and the explorer answer without a page load; every page and
//! form also works without script (plain links and form submissions).
//!
//! Pages: home (`/`), search (`/search`), the catalog explorer
//! (`/catalog`), entity pages (`/catalog/{namespace}/{kind}/{name}`, with
//! group and user sections), locations (`/locations`, with registration).

use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::Environment;
use plinth_catalog::ingest;
use plinth_model::EntityRef;
use plinth_store::{EntityQuery, Filter, OrderField, SortDirection, StoreError, StoredEntity};
use serde_json::{Value, json};

use crate::AppState;
use crate::access::Caller;
use crate::params::pairs;
use plinth_access::Action;

mod apidoc;
mod oidc;
mod sign_in;

pub(crate) use sign_in::{session_secret, to_sign_in};
mod graph;

use graph::{Graph, Node};

/// The portal's routes (HTML, not part of the OpenAPI document).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/catalog", get(explorer))
        .route("/catalog/{namespace}/{kind}/{name}", get(entity_page))
        .route("/locations", get(locations).post(register_location))
        .route("/sign-in", get(sign_in::page).post(sign_in::sign_in))
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/oidc/callback", get(oidc::callback))
        .route(
            "/sign-out",
            get(sign_in::sign_out_page).post(sign_in::sign_out),
        )
        .route("/audit", get(audit_log))
        .route("/assets/{file}", get(asset))
}

/// The explorer's facets: (URL parameter, search key, label).
const FACETS: [(&str, &str, &str); 7] = [
    ("kind", "kind", "Kind"),
    ("type", "spec.type", "Type"),
    ("lifecycle", "spec.lifecycle", "Lifecycle"),
    ("owner", "relations.ownedby", "Owner"),
    ("system", "spec.system", "System"),
    ("namespace", "metadata.namespace", "Namespace"),
    ("tag", "metadata.tags", "Tag"),
];

/// Columns the explorer sorts by: (URL value, search key).
const SORTS: [(&str, &str); 6] = [
    ("name", "metadata.name"),
    ("kind", "kind"),
    ("type", "spec.type"),
    ("owner", "spec.owner"),
    ("lifecycle", "spec.lifecycle"),
    ("system", "spec.system"),
];

const PAGE_SIZES: [u64; 3] = [25, 50, 100];

/// Most entities of one relation an entity page names with their titles
/// (the rest are listed by reference).
const MAX_NAMED: usize = 50;

/// Most values a picker lists (the most used ones), and most group names
/// suggested on the home page.
const MAX_OPTIONS: usize = 200;

/// Fields the explorer's text filter looks in.
const TEXT_FIELDS: [&str; 4] = [
    "metadata.name",
    "metadata.title",
    "metadata.description",
    "spec.profile.displayname",
];

/// Filters the explorer takes from links (shown as chips, not as facets).
const LINK_FILTERS: [(&str, &str); 1] = [(
    "origin",
    "metadata.annotations.backstage.io/managed-by-origin-location",
)];

const GROUP_COOKIE: &str = "plinth_group";

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters"),
        );
        env.add_filter("truncate", truncate);
        // HTML escaping without escaping `/`: the same safety, and pages
        // (and their snapshots) that read as written.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(s)
                if !value.is_safe()
                    && matches!(state.auto_escape(), minijinja::AutoEscape::Html) =>
            {
                out.write_str(&graph::escape(s))?;
                Ok(())
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("macros.html", include_str!("templates/macros.html")),
            ("home.html", include_str!("templates/home.html")),
            ("search.html", include_str!("templates/search.html")),
            ("explorer.html", include_str!("templates/explorer.html")),
            ("entity.html", include_str!("templates/entity.html")),
            ("locations.html", include_str!("templates/locations.html")),
            ("error.html", include_str!("templates/error.html")),
            ("sign_in.html", include_str!("templates/sign_in.html")),
            ("sign_out.html", include_str!("templates/sign_out.html")),
            ("audit.html", include_str!("templates/audit.html")),
        ] {
            // Templates are part of the binary: a broken one fails every test.
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("portal template {name}: {e:#}"));
        }
        env
    })
}

/// `text|truncate(n)`: at most `n` characters, with an ellipsis when cut.
fn truncate(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.truncate(cut.trim_end().len());
        cut.push('…');
        cut
    }
}

/// A rendered page, or the page explaining why there is none.
type Page = Result<Response, PageError>;

#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: String,
    message: String,
}

impl PageError {
    fn not_found(title: impl Into<String>, message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            title: title.into(),
            message: message.into(),
        }
    }
}

/// The page for a browser that is not identified on a server that
/// requires it.
pub(crate) fn unauthenticated(message: &str) -> Response {
    PageError {
        status: StatusCode::UNAUTHORIZED,
        title: "Not signed in".into(),
        message: message.into(),
    }
    .into_response()
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        tracing::error!(error = %e, "portal: catalog database error");
        PageError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "The catalog is not available".into(),
            message: "The catalog database did not answer. Try again shortly.".into(),
        }
    }
}

impl From<minijinja::Error> for PageError {
    fn from(e: minijinja::Error) -> PageError {
        tracing::error!(error = %e, "portal: template error");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "This page could not be drawn".into(),
            message: "plinth failed to render this page; the server log says why.".into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ctx = json!({"page": {"title": self.title, "nav": ""}, "message": self.message});
        match templates()
            .get_template("error.html")
            .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        {
            Ok(html) => (self.status, html_headers(), html).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        // Pages hold only what the page itself loads from here.
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
            ),
        ),
    ]
}

/// Renders a page, or only `block` of it for an htmx request.
fn render(name: &str, ctx: &Value, headers: &HeaderMap, block: Option<&str>) -> Page {
    let tmpl = templates().get_template(name)?;
    // The header offers signing out to a browser with a session.
    let ctx = minijinja::context! {
        signed_in => session_secret(headers).is_some(),
        ..minijinja::Value::from(minijinja::value::Serde(ctx))
    };
    let html = match block.filter(|_| is_htmx(headers)) {
        Some(block) => tmpl
            .render_captured(ctx)?
            .with_state_mut(|state| state.render_block(block))?,
        None => tmpl.render(ctx)?,
    };
    Ok((html_headers(), html).into_response())
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// Where an entity's page is.
fn entity_href(entity_ref: &str) -> String {
    match entity_ref.parse::<EntityRef>() {
        Ok(r) => format!(
            "/catalog/{}/{}/{}",
            encode(r.namespace()),
            encode(r.kind()),
            encode(r.name())
        ),
        Err(_) => format!("/search?q={}", encode(entity_ref)),
    }
}

/// Percent-encoding for a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, empty values left out.
fn query_string(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The targets of an entity's relations of one type, as links.
fn related(e: &StoredEntity, relation: &str) -> Vec<Value> {
    e.relations
        .iter()
        .filter(|(t, _)| t == relation)
        .map(|(_, target)| link(target))
        .collect()
}

fn link(entity_ref: &str) -> Value {
    let short = entity_ref
        .split_once(':')
        .map(|(k, rest)| (k, rest.strip_prefix("default/").unwrap_or(rest)))
        .map_or(entity_ref.to_owned(), |(k, rest)| format!("{k}:{rest}"));
    json!({"ref": entity_ref, "href": entity_href(entity_ref), "short": short})
}

/// What tables and lists show of an entity.
fn summary(e: &StoredEntity) -> Value {
    let b = &e.body;
    let name = text(&b["metadata"]["name"]);
    let title = b["metadata"]["title"]
        .as_str()
        .or(b["spec"]["profile"]["displayName"].as_str())
        .map(str::to_owned);
    json!({
        "ref": e.entity_ref,
        "href": entity_href(&e.entity_ref),
        "kind": text(&b["kind"]),
        "namespace": text(&b["metadata"]["namespace"]),
        "name": name,
        "title": title.unwrap_or_else(|| name.clone()),
        "description": text(&b["metadata"]["description"]),
        "type": text(&b["spec"]["type"]),
        "lifecycle": text(&b["spec"]["lifecycle"]),
        "owner": related(e, "ownedBy").into_iter().next(),
        "system": related(e, "partOf").into_iter().find(|l| l["ref"].as_str().is_some_and(|r| r.starts_with("system:"))),
        "tags": b["metadata"]["tags"].as_array().cloned().unwrap_or_default(),
        "problems": e.status.len(),
    })
}

// ---- home ------------------------------------------------------------------

async fn home(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let asked = param(&p, "group");
    let store = &state.store;
    // The team shown: the one chosen here, else a signed-in person's own
    // (the first group they are a member of).
    let mut chosen = asked.clone().or_else(|| cookie(&headers, GROUP_COOKIE));
    if chosen.is_none()
        && let Some(Extension(caller)) = &caller
        && let plinth_access::Subject::User(user) = &caller.principal.subject
        && let Some(entity) = store.entity_by_ref(user).await?
    {
        chosen = entity
            .relations
            .iter()
            .find(|(t, _)| t == "memberOf")
            .map(|(_, group)| group.clone());
    }

    // Suggestions for the group box; any name can still be typed.
    let group_names: Vec<String> = store
        .facet_values("metadata.name", &["group".to_owned()])
        .await?
        .into_iter()
        .take(MAX_OPTIONS)
        .map(|(name, _)| name)
        .collect();

    let mut group_view = Value::Null;
    if let Some(chosen) = chosen.as_deref().filter(|c| !c.is_empty()) {
        let r = EntityRef::parse(
            chosen,
            plinth_model::RefDefaults {
                kind: Some("group"),
                namespace: "default",
            },
        );
        group_view = match r {
            Ok(r) => match store.entity_by_ref(&r).await? {
                Some(g) => {
                    let owned = store
                        .query_entities(&EntityQuery {
                            filter: vec![vec![filter("relations.ownedby", &g.entity_ref)]],
                            limit: Some(12),
                            ..Default::default()
                        })
                        .await?;
                    json!({
                        "group": summary(&g),
                        "members": related(&g, "hasMember").len(),
                        "parents": related(&g, "childOf"),
                        "children": related(&g, "parentOf"),
                        "owned": owned.entities.iter().map(summary).collect::<Vec<_>>(),
                        "owned_total": owned.total,
                        "owned_href": format!("/catalog{}", query_string(&[("owner", g.entity_ref.clone())])),
                    })
                }
                None => json!({"missing": chosen}),
            },
            Err(e) => json!({"missing": chosen, "error": e.to_string()}),
        };
    }

    let total = store.entity_count().await?;
    let kinds = store.facet_values("kind", &[]).await?;
    let health = store.health().await?;
    let recent = store.recently_changed(10).await?;
    let problems = store.entities_with_problems(8).await?;
    let ctx = json!({
        "page": {"title": "Home", "nav": "home"},
        "group_names": group_names,
        "chosen": chosen.unwrap_or_default(),
        "team": group_view,
        "total": total,
        "kinds": kinds.iter().map(|(k, n)| json!({
            "kind": k, "count": n,
            "href": format!("/catalog{}", query_string(&[("kind", k.to_lowercase())])),
        })).collect::<Vec<_>>(),
        "health": {
            "with_problems": health.with_problems,
            "conflicts": health.conflicts,
            "without_owner": health.without_owner(),
            "missing_owners": health.missing_owners.iter().take(8).map(|(o, n)| json!({"owner": link(o), "count": n})).collect::<Vec<_>>(),
        },
        "problems": problems.iter().map(|e| {
            let mut s = summary(e);
            s["first_problem"] = e.status.first().map(|p| p["message"].clone()).unwrap_or_default();
            s
        }).collect::<Vec<_>>(),
        "recent": recent.iter().map(summary).collect::<Vec<_>>(),
    });
    let mut res = render("home.html", &ctx, &headers, None)?;
    if let Some(asked) = asked {
        // Remembered for this browser: people choose a team other than their own.
        let cookie = if asked.is_empty() {
            format!("{GROUP_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax; HttpOnly")
        } else {
            format!(
                "{GROUP_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly",
                encode(&asked)
            )
        };
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// The first value of a query or form parameter, trimmed.
fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            pairs(Some(&format!("v={v}")))
                .pop()
                .map(|(_, v)| v)
                .unwrap_or_default()
        })
}

fn filter(key: &str, value: &str) -> Filter {
    Filter {
        key: key.to_owned(),
        values: vec![value.to_lowercase()],
    }
}

// ---- search ----------------------------------------------------------------

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let q = param(&p, "q").unwrap_or_default();
    let hits = if q.is_empty() {
        Vec::new()
    } else {
        state.store.search(&q, 20).await?
    };
    let ctx = json!({
        "page": {"title": if q.is_empty() { "Search".to_owned() } else { format!("Search: {q}") }, "nav": "search"},
        "q": q,
        "hits": hits.iter().map(|h| summary(&h.entity)).collect::<Vec<_>>(),
        "explorer_href": format!("/catalog{}", query_string(&[("q", q.clone())])),
    });
    render("search.html", &ctx, &headers, Some("results"))
}

// ---- explorer --------------------------------------------------------------

async fn explorer(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let get = |name: &str| -> Vec<String> {
        p.iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    };
    let first = |name: &str| get(name).into_iter().next().unwrap_or_default();
    let chosen: Vec<(&str, &str, Vec<String>)> = FACETS
        .iter()
        .map(|(param, key, _)| (*param, *key))
        .chain(LINK_FILTERS)
        .map(|(param, key)| (param, key, get(param)))
        .collect();
    let all: Vec<Filter> = chosen
        .iter()
        .filter(|(_, _, values)| !values.is_empty())
        .map(|(_, key, values)| Filter {
            key: (*key).to_owned(),
            values: values.iter().map(|v| v.to_lowercase()).collect(),
        })
        .collect();
    let q = first("q").trim().to_owned();
    let full_text = (!q.is_empty()).then(|| {
        (
            q.clone(),
            TEXT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        )
    });
    let sort = first("sort");
    let sort_key = SORTS.iter().find(|(s, _)| *s == sort).map(|(_, k)| *k);
    let desc = first("dir") == "desc";
    let per = first("per")
        .parse()
        .ok()
        .filter(|n| PAGE_SIZES.contains(n))
        .unwrap_or(PAGE_SIZES[0]);
    let page_no: u64 = first("page").parse().ok().filter(|n| *n >= 1).unwrap_or(1);

    let query = EntityQuery {
        filter: if all.is_empty() {
            Vec::new()
        } else {
            vec![all]
        },
        order: sort_key
            .map(|k| OrderField {
                field: k.to_owned(),
                direction: if desc {
                    SortDirection::Desc
                } else {
                    SortDirection::Asc
                },
            })
            .into_iter()
            .collect(),
        full_text: full_text.clone(),
        offset: (page_no - 1) * per,
        limit: Some(per),
        ..Default::default()
    };
    let page = state.store.query_entities(&query).await?;

    // Pickers read the index alone, so they answer at once at any size:
    // kinds with their counts; types (as Backstage's type picker) among
    // the chosen kinds; the other facets every value known.
    let kinds = get("kind");
    let mut facets = Vec::new();
    for (param, key, label) in FACETS {
        let scope: &[String] = if param == "type" { &kinds } else { &[] };
        let mut values = state.store.facet_values(key, scope).await?;
        let selected: Vec<String> = get(param).iter().map(|v| v.to_lowercase()).collect();
        let counted = matches!(param, "kind" | "type");
        // A picker of thousands (owners in a large organisation) would be
        // most of the page: the most used values, and those chosen.
        let known = values.len();
        if known > MAX_OPTIONS {
            let mut by_use = values.clone();
            by_use.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let keep: std::collections::HashSet<String> = by_use
                .into_iter()
                .take(MAX_OPTIONS)
                .map(|(v, _)| v)
                .chain(selected.iter().cloned())
                .collect();
            values.retain(|(v, _)| keep.contains(v));
        }
        let options: Vec<Value> = values
            .iter()
            .map(|(value, n)| {
                let shown = if param == "owner" { link(value)["short"].as_str().unwrap_or(value).to_owned() } else { value.clone() };
                json!({"value": value, "label": shown, "count": if counted { Some(n) } else { None }, "selected": selected.contains(value)})
            })
            .collect();
        facets.push(json!({
            "param": param,
            "label": label,
            "options": options,
            "more": known.saturating_sub(MAX_OPTIONS),
        }));
    }

    // The current view as query pairs, to build links that change one thing.
    let mut current: Vec<(&str, String)> = Vec::new();
    for (param, _, values) in &chosen {
        for v in values {
            current.push((param, v.clone()));
        }
    }
    if !q.is_empty() {
        current.push(("q", q.clone()));
    }
    let with = |extra: &[(&'static str, String)], drop: &[&str]| -> String {
        let mut pairs: Vec<(&str, String)> = current
            .iter()
            .filter(|(k, _)| !drop.contains(k))
            .cloned()
            .collect();
        pairs.extend(extra.iter().cloned());
        format!("/catalog{}", query_string(&pairs))
    };
    let sort_state = |s: &str| (sort == s).then_some(if desc { "descending" } else { "ascending" });
    let columns: Vec<Value> = SORTS
        .iter()
        .map(|(s, _)| {
            let next_desc = sort == *s && !desc;
            json!({
                "sort": s,
                "label": match *s { "name" => "Name", "kind" => "Kind", "type" => "Type", "owner" => "Owner", "lifecycle" => "Lifecycle", _ => "System" },
                "aria_sort": sort_state(s).unwrap_or("none"),
                "href": with(&[("sort", (*s).to_owned()), ("dir", if next_desc { "desc".into() } else { String::new() }), ("per", if per != PAGE_SIZES[0] { per.to_string() } else { String::new() })], &[]),
            })
        })
        .collect();
    let keep_sort = |mut extra: Vec<(&'static str, String)>| {
        extra.push(("sort", sort_key.map(|_| sort.clone()).unwrap_or_default()));
        extra.push(("dir", if desc { "desc".into() } else { String::new() }));
        extra
    };
    let pages = page.total.div_ceil(per).max(1);
    let page_link = |n: u64| {
        with(
            &keep_sort(vec![
                ("page", if n > 1 { n.to_string() } else { String::new() }),
                (
                    "per",
                    if per != PAGE_SIZES[0] {
                        per.to_string()
                    } else {
                        String::new()
                    },
                ),
            ]),
            &[],
        )
    };
    let chips: Vec<Value> = current
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let rest: Vec<(&str, String)> = current
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p.clone())
                .collect();
            json!({"param": k, "value": v, "href": format!("/catalog{}", query_string(&rest))})
        })
        .collect();
    let ctx = json!({
        "page": {"title": "Catalog", "nav": "catalog"},
        "q": q,
        "facets": facets,
        "chips": chips,
        "clear_href": "/catalog",
        "columns": columns,
        "rows": page.entities.iter().map(summary).collect::<Vec<_>>(),
        "total": page.total,
        "page_no": page_no,
        "pages": pages,
        "per": per,
        "page_sizes": PAGE_SIZES,
        "sort": sort_key.map(|_| sort.clone()).unwrap_or_default(),
        "dir": if desc { "desc" } else { "" },
        "first_shown": if page.entities.is_empty() { 0 } else { (page_no - 1) * per + 1 },
        "last_shown": (page_no - 1) * per + page.entities.len() as u64,
        "prev_href": (page_no > 1).then(|| page_link(page_no - 1)),
        "next_href": (page_no < pages).then(|| page_link(page_no + 1)),
    });
    // The pickers come along: their choices depend on the kinds chosen.
    render("explorer.html", &ctx, &headers, Some("explorer"))
}

// ---- entity pages ------------------------------------------------------------

async fn entity_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((namespace, kind, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let depth = if p.iter().any(|(k, v)| k == "depth" && v == "2") {
        2
    } else {
        1
    };
    let r = EntityRef::new(&kind, &namespace, &name);
    let Some(e) = state.store.entity_by_ref(&r).await? else {
        return Err(PageError::not_found(
            format!("No entity {r}"),
            format!(
                "The catalog holds no entity {r}. It may have been removed from its location, or the reference may be misspelt."
            ),
        ));
    };
    let b = &e.body;

    // Neighbours: whether each exists (one index lookup for all), and the
    // bodies of those drawn in the graph or listed with their names. A team
    // owning thousands of entities costs its page a lookup per entity,
    // not a body per entity.
    let mut neighbour_refs: Vec<String> = e.relations.iter().map(|(_, t)| t.clone()).collect();
    neighbour_refs.sort();
    neighbour_refs.dedup();
    let existing: std::collections::HashSet<String> = state
        .store
        .existing_refs(&neighbour_refs)
        .await?
        .into_iter()
        .collect();
    let mut wanted: Vec<String> = neighbour_refs
        .iter()
        .filter(|r| existing.contains(*r))
        .take(graph::MAX_RING)
        .cloned()
        .collect();
    for t in ["hasMember", "memberOf", "childOf", "parentOf"] {
        wanted.extend(
            e.relations
                .iter()
                .filter(|(ty, target)| ty == t && existing.contains(target))
                .take(MAX_NAMED)
                .map(|(_, target)| target.clone()),
        );
    }
    wanted.sort();
    wanted.dedup();
    let loaded: std::collections::HashMap<String, StoredEntity> = if wanted.is_empty() {
        Default::default()
    } else {
        state
            .store
            .entities_by_refs(&wanted)
            .await?
            .into_iter()
            .flatten()
            .map(|n| (n.entity_ref.clone(), n))
            .collect()
    };
    let found = |r: &str| -> Option<&StoredEntity> { loaded.get(r) };
    let exists = |r: &str| existing.contains(r);
    let graph = entity_graph(&e, &neighbour_refs, &exists, &found, depth);

    let mut relation_groups: Vec<Value> = Vec::new();
    for (t, target) in &e.relations {
        let mut l = link(target);
        l["missing"] = json!(!exists(target));
        match relation_groups.iter_mut().find(|g| g["type"] == t.as_str()) {
            Some(g) => g["targets"]
                .as_array_mut()
                .into_iter()
                .for_each(|a| a.push(l.clone())),
            None => relation_groups.push(json!({"type": t, "targets": [l]})),
        }
    }

    let kind_lower = e
        .entity_ref
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut people = Value::Null;
    if kind_lower == "group" || kind_lower == "user" {
        let list = |t: &str| -> Vec<Value> {
            related(&e, t)
                .into_iter()
                .map(|mut l| {
                    let r = l["ref"].as_str().unwrap_or_default().to_owned();
                    if let Some(n) = found(&r) {
                        l["title"] = summary(n)["title"].clone();
                        l["email"] = n.body["spec"]["profile"]["email"].clone();
                    }
                    l
                })
                .collect()
        };
        // Ownership: direct, and (for a user) through each of their groups.
        let mut owned: Vec<Value> = list("ownerOf")
            .into_iter()
            .map(|mut l| {
                l["via"] = json!(null);
                l
            })
            .collect();
        if kind_lower == "user" {
            for (t, g) in &e.relations {
                if t != "memberOf" {
                    continue;
                }
                if let Some(group) = found(g) {
                    for (t2, target) in &group.relations {
                        if t2 == "ownerOf" {
                            let mut l = link(target);
                            l["via"] = link(g);
                            owned.push(l);
                        }
                    }
                }
            }
        }
        people = json!({
            "members": list("hasMember"),
            "member_of": list("memberOf"),
            "parents": list("childOf"),
            "children": list("parentOf"),
            "owned": owned,
            "owned_href": format!("/catalog{}", query_string(&[("owner", e.entity_ref.clone())])),
            "profile": b["spec"]["profile"].clone(),
        });
    }

    let api = match (kind_lower.as_str(), b["spec"]["definition"].as_str()) {
        ("api", Some(def)) => apidoc::view(b["spec"]["type"].as_str().unwrap_or_default(), def),
        _ => Value::Null,
    };
    let location = state.store.location(&e.location_id).await?;
    let annotations: Vec<Value> = b["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"key": k, "value": text(v)}))
        .collect();
    let links: Vec<Value> = b["metadata"]["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let url = l["url"].as_str()?;
            // Only web links become links: a catalog file is not trusted to
            // put script in a page.
            let safe = url.starts_with("https://") || url.starts_with("http://");
            Some(json!({"url": url, "title": l["title"].as_str().unwrap_or(url), "safe": safe}))
        })
        .collect();
    let mut yaml_body = b.clone();
    if let Some(m) = yaml_body["metadata"].as_object_mut() {
        m.insert("uid".into(), e.uid.clone().into());
        m.insert("etag".into(), e.etag.clone().into());
    }
    let base = entity_href(&e.entity_ref);
    let ctx = json!({
        "page": {"title": summary(&e)["title"], "nav": "catalog"},
        "e": summary(&e),
        "uid": e.uid,
        "entity_ref": e.entity_ref,
        "spec_owner": text(&b["spec"]["owner"]),
        "domain": related(&e, "partOf").into_iter().find(|l| l["ref"].as_str().is_some_and(|r| r.starts_with("domain:"))),
        "links": links,
        "annotations": annotations,
        "problems": e.status.iter().map(|s| json!({
            "level": text(&s["level"]),
            "type": text(&s["type"]),
            "message": text(&s["message"]),
            "field": text(&s["error"]["field"]),
        })).collect::<Vec<_>>(),
        "relations": relation_groups,
        "graph": graph,
        "depth": depth,
        "depth1_href": format!("{base}#relations"),
        "depth2_href": format!("{base}?depth=2#relations"),
        "people": people,
        "api": api,
        "location": location.map(|l| json!({"id": l.id, "type": l.kind, "target": l.target})),
        "file": e.file,
        "yaml": plinth_yaml::to_yaml(&yaml_body),
    });
    render("entity.html", &ctx, &headers, None)
}

fn entity_graph<'a>(
    e: &StoredEntity,
    neighbour_refs: &[String],
    exists: &dyn Fn(&str) -> bool,
    found: &dyn Fn(&str) -> Option<&'a StoredEntity>,
    depth: u8,
) -> String {
    let node = |r: &str| Node {
        entity_ref: r.to_owned(),
        href: exists(r).then(|| entity_href(r)),
    };
    let mut graph = Graph {
        centre: e.entity_ref.clone(),
        ..Default::default()
    };
    for r in neighbour_refs {
        let types: Vec<String> = e
            .relations
            .iter()
            .filter(|(_, t)| t == r)
            .map(|(ty, _)| ty.clone())
            .collect();
        graph.ring.push((node(r), types));
    }
    if depth == 2 {
        for r in neighbour_refs {
            let Some(n) = found(r) else { continue };
            let mut fan: Vec<(Node, Vec<String>)> = Vec::new();
            for (ty, target) in &n.relations {
                if *target == e.entity_ref || neighbour_refs.binary_search(target).is_ok() {
                    continue;
                }
                match fan.iter_mut().find(|(nd, _)| nd.entity_ref == *target) {
                    Some((_, types)) => types.push(ty.clone()),
                    None => fan.push((
                        Node {
                            entity_ref: target.clone(),
                            // Depth-2 nodes are not loaded: links go to the
                            // page, which says if the entity is missing.
                            href: Some(entity_href(target)),
                        },
                        vec![ty.clone()],
                    )),
                }
            }
            if !fan.is_empty() {
                graph.outer.insert(r.clone(), fan);
            }
        }
    }
    graph.to_svg()
}

// ---- locations -------------------------------------------------------------

async fn locations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let added = param(&p, "added");
    locations_page(&state, &caller, &headers, added, None, StatusCode::OK).await
}

async fn locations_page(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    added: Option<String>,
    form: Option<(String, String, String)>,
    status: StatusCode,
) -> Page {
    let mut rows = Vec::new();
    for l in state.store.locations().await? {
        let problems = state.store.location_problems(&l.id).await?;
        let count = state.store.location_entity_count(&l.id).await?;
        rows.push(json!({
            "id": l.id,
            "type": l.kind,
            "target": l.target,
            "created_at": l.created_at,
            "refresh": l.refresh.as_ref().map(|r| json!({"at": r.at, "status": r.status, "message": r.message})),
            "entities": count,
            "entities_href": format!("/catalog{}", query_string(&[("origin", format!("{}:{}", l.kind, l.target))])),
            "findings": problems.findings.iter().take(50).map(|f| json!({
                "file": text(&f["file"]), "line": text(&f["line"]), "entity": text(&f["entity"]),
                "field": text(&f["field"]), "message": text(&f["message"]),
            })).collect::<Vec<_>>(),
            "more_findings": problems.findings.len().saturating_sub(50),
            "lost": problems.lost_conflicts.iter().map(|(r, f)| json!({"entity": link(r), "file": f})).collect::<Vec<_>>(),
            "added": added.as_deref() == Some(l.id.as_str()),
        }));
    }
    let added_entities = match added.as_deref() {
        Some(id) => state
            .store
            .entities_of_location(id)
            .await?
            .iter()
            .take(200)
            .map(summary)
            .collect(),
        None => Vec::new(),
    };
    let (kind, target, error) =
        form.unwrap_or_else(|| ("file".into(), String::new(), String::new()));
    let ctx = json!({
        "page": {"title": "Locations", "nav": "locations"},
        "locations": rows,
        "added": added,
        "added_entities": added_entities,
        "form": {"type": kind, "target": target, "error": error},
        "csrf": caller.csrf.as_deref().unwrap_or_default(),
        "types": [
            {"value": "file", "label": "File or glob"},
            {"value": "dir", "label": "Directory"},
            {"value": "git", "label": "Git repository"},
        ],
    });
    let mut res = render("locations.html", &ctx, headers, None)?;
    *res.status_mut() = status;
    Ok(res)
}

async fn register_location(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    if !same_origin(&headers) {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Refused".into(),
            message: "This form may only be sent from plinth's own pages.".into(),
        });
    }
    if let Err(refused) = caller.allow(&Action::RegisterLocation) {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Not allowed".into(),
            message: refused.message,
        });
    }
    let form = pairs(std::str::from_utf8(&body).ok());
    let field = |name: &str| param(&form, name).unwrap_or_default();
    sign_in::check_csrf(&caller, &field("csrf"))?;
    let (kind, target) = (field("type"), field("target"));
    match register(&state, &caller, &kind, &target).await {
        Ok(id) => Ok(Redirect::to(&format!(
            "/locations?added={}#location-{}",
            encode(&id),
            encode(&id)
        ))
        .into_response()),
        Err(message) => {
            locations_page(
                &state,
                &caller,
                &headers,
                None,
                Some((kind, target, message)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

/// Registers a location and reads it once, as `POST /api/catalog/locations`
/// does; the error says what to change in the form.
async fn register(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    target: &str,
) -> Result<String, String> {
    if target.is_empty() {
        return Err("Enter a target: a path, a glob or a repository URL.".into());
    }
    let checked = ingest::check_location(kind, target, &state.ingest)?;
    let unavailable = |e: StoreError| {
        tracing::error!(error = %e, "portal: catalog database error");
        "The catalog database did not answer; try again shortly.".to_owned()
    };
    if state
        .store
        .location_by_target(kind, &checked)
        .await
        .map_err(unavailable)?
        .is_some()
    {
        return Err(format!(
            "The location {kind}:{checked} is already registered."
        ));
    }
    let audit = |added: &plinth_store::Location| {
        let after = json!({
            "location": {"id": added.id, "type": added.kind, "target": added.target},
        });
        caller.entry("location.create", &added.id, None, Some(after))
    };
    let location = state
        .store
        .add_location(kind, &checked, Some(&audit))
        .await
        .map_err(unavailable)?;
    state
        .refresh(&location)
        .await
        .map_err(|e| format!("Registered, but the first refresh failed: {e}"))?;
    Ok(location.id)
}

/// Forms are only taken from plinth's own pages: a browser says where a
/// request comes from (`Sec-Fetch-Site`, `Origin`), and a page elsewhere
/// must not register locations on a plinth it can reach.
fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return false;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, h)| h == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

// ---- assets ----------------------------------------------------------------

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match file.as_str() {
        "portal.css" => (include_str!("assets/portal.css"), "text/css; charset=utf-8"),
        "portal.js" => (
            include_str!("assets/portal.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx.min.js" => (
            include_str!("assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

// ---- audit log ---------------------------------------------------------------

/// The actions the audit log records, for the filter's choices.
const AUDITED: [&str; 9] = [
    "location.create",
    "location.update",
    "location.delete",
    "location.refresh",
    "entity.delete",
    "entity.refresh",
    "token.create",
    "token.revoke",
    "session.create",
];

/// Entries on one page of the audit log.
const AUDIT_PAGE: usize = 50;

/// `/audit?actor=&action=&target=&since=&until=&cursor=`: the audit log,
/// newest first, for platform admins; the same filters as `/api/audit`,
/// whose JSON lines export it links to.
async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let refused = |status: StatusCode, message: String| PageError {
        status,
        title: "Audit log".into(),
        message,
    };
    caller
        .allow(&Action::ReadAudit)
        .map_err(|e| refused(e.status, e.message))?;
    let p = pairs(raw.as_deref());
    let (query, _) = crate::audit::audit_query(&p, AUDIT_PAGE).map_err(|e| {
        refused(
            e.status,
            format!("{}. Change the filter and try again.", e.message),
        )
    })?;
    let entries = state.store.audit(&query).await?;
    let filters: Vec<(&str, String)> = ["actor", "action", "target", "since", "until"]
        .into_iter()
        .map(|k| (k, param(&p, k).unwrap_or_default()))
        .collect();
    let older = (entries.len() == query.limit)
        .then(|| entries.last())
        .flatten()
        .map(|last| {
            let mut with_cursor = filters.clone();
            with_cursor.push(("cursor", last.id.to_string()));
            format!("/audit{}", query_string(&with_cursor))
        });
    let mut export = filters.clone();
    export.push(("format", "jsonl".into()));
    let show = |v: &Option<Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
    };
    let ctx = json!({
        "page": {"title": "Audit log", "nav": ""},
        "filter": filters.iter().map(|(k, v)| (k.to_string(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "actions": AUDITED,
        "entries": entries.iter().map(|e| json!({
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "actor_href": e.actor.parse::<EntityRef>().ok().map(|r| entity_href(&r.to_string())),
            "action": e.action,
            "target": e.target,
            "source": e.source,
            "before": show(&e.before),
            "after": show(&e.after),
        })).collect::<Vec<_>>(),
        "older": older,
        "export": format!("/api/audit{}", query_string(&export)),
    });
    render("audit.html", &ctx, &headers, None)
}

//! `/api/catalog` handlers, shaped as Backstage's catalog backend answers.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_catalog::ingest::{self, refresh_location};
use plinth_model::{EntityRef, RefDefaults};
use plinth_store::{ApiEntity, EntityQuery, Location, StoredEntity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Caller, owners};
use crate::error::ApiError;
use crate::params::{self, all, one};
use plinth_access::Action;

/// The fields searched by `fullTextFilterTerm` when no fields and no order
/// are given.
const DEFAULT_FULL_TEXT_FIELDS: [&str; 3] = [
    "metadata.name",
    "metadata.title",
    "spec.profile.displayname",
];

/// Largest page when a client asks for none: unbounded lists are how
/// Backstage installs fall over (100 MB answers at 40,000 entities).
const DEFAULT_QUERY_LIMIT: u64 = 20;

/// A JSON request body, or an input error saying what shape was expected.
pub(crate) fn json_body<T>(
    body: Result<Json<T>, JsonRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
        _ => ApiError::input(format!("{expected}: {e}")),
    })
}

/// An entity as answered: whole, written straight from the stored parts,
/// or only the fields asked for.
enum EntityOut<'a> {
    Whole(ApiEntity<'a>),
    Fields(Value),
}

impl Serialize for EntityOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EntityOut::Whole(e) => e.serialize(s),
            EntityOut::Fields(v) => v.serialize(s),
        }
    }
}

fn entity_json<'a>(e: &'a StoredEntity, fields: &[String]) -> EntityOut<'a> {
    if fields.is_empty() {
        EntityOut::Whole(e.api())
    } else {
        EntityOut::Fields(params::project(e.to_api_json(), fields))
    }
}

/// `GET /entities?filter=&fields=&order=&offset=&limit=&after=`
pub async fn get_entities(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = params::pairs(raw.as_deref());
    let fields = params::fields(all(&p, "fields"));
    let mut query = EntityQuery {
        filter: params::filter_sets(all(&p, "filter"))?,
        predicate: None,
        order: params::order_param(all(&p, "order"))?,
        offset: params::number(&p, "offset")?.unwrap_or(0),
        limit: params::number(&p, "limit")?,
        full_text: None,
    };
    // `after` continues a listing: the cursor holds the whole query.
    if let Some(after) = one(&p, "after") {
        query = params::decode_cursor(after)?;
    }
    let page = state.store.query_entities(&query).await?;
    let items: Vec<EntityOut> = page
        .entities
        .iter()
        .map(|e| entity_json(e, &fields))
        .collect();
    let mut headers = HeaderMap::new();
    if let Some(limit) = query.limit
        && query.offset + limit < page.total
    {
        let next = EntityQuery {
            offset: query.offset + limit,
            ..query.clone()
        };
        let link = format!("?after={}", params::encode_cursor(&next));
        if let Ok(v) = HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")) {
            headers.insert(header::LINK, v);
        }
    }
    Ok((headers, Json(items)).into_response())
}

/// `GET /entities/by-query`: cursor pagination with `totalItems`.
pub async fn query_entities(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = params::pairs(raw.as_deref());
    let fields = params::fields(all(&p, "fields"));
    let limit = params::number(&p, "limit")?;
    let query = match one(&p, "cursor") {
        Some(cursor) => {
            let mut q = params::decode_cursor(cursor)?;
            if let Some(l) = limit {
                q.limit = Some(l);
            }
            q
        }
        None => {
            let order = params::order_field(all(&p, "orderField"))?;
            let full_text = one(&p, "fullTextFilterTerm")
                .filter(|t| !t.trim().is_empty())
                .map(|term| {
                    let mut fields = params::fields(all(&p, "fullTextFilterFields"));
                    if fields.is_empty() {
                        fields = match order.first() {
                            Some(o) => vec![o.field.clone()],
                            None => DEFAULT_FULL_TEXT_FIELDS
                                .iter()
                                .map(|f| (*f).to_owned())
                                .collect(),
                        };
                    }
                    (
                        term.to_owned(),
                        fields.iter().map(|f| f.to_lowercase()).collect(),
                    )
                });
            EntityQuery {
                filter: params::filter_sets(all(&p, "filter"))?,
                predicate: None,
                order,
                full_text,
                offset: params::number(&p, "offset")?.unwrap_or(0),
                limit: Some(limit.unwrap_or(DEFAULT_QUERY_LIMIT)),
            }
        }
    };
    answer_query(&state, query, &fields).await
}

/// One page of a by-query answer: `{items, totalItems, pageInfo}`.
async fn answer_query(
    state: &AppState,
    query: EntityQuery,
    fields: &[String],
) -> Result<Response, ApiError> {
    let page = state.store.query_entities(&query).await?;
    let limit = query.limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    let mut page_info = serde_json::Map::new();
    if query.offset + limit < page.total {
        let next = EntityQuery {
            offset: query.offset + limit,
            ..query.clone()
        };
        page_info.insert("nextCursor".into(), params::encode_cursor(&next).into());
    }
    if query.offset > 0 {
        let prev = EntityQuery {
            offset: query.offset.saturating_sub(limit),
            ..query.clone()
        };
        page_info.insert("prevCursor".into(), params::encode_cursor(&prev).into());
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        items: Vec<EntityOut<'a>>,
        total_items: u64,
        page_info: serde_json::Map<String, Value>,
    }
    Ok(Json(Answer {
        items: page
            .entities
            .iter()
            .map(|e| entity_json(e, fields))
            .collect(),
        total_items: page.total,
        page_info,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredicateQuery {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    #[serde(default)]
    full_text_filter: Option<FullTextFilter>,
    /// Accepted for compatibility; the total is always given.
    #[serde(default, rename = "totalItems")]
    _total_items: Option<bool>,
}

#[derive(Deserialize)]
pub struct OrderBy {
    field: String,
    order: String,
}

#[derive(Deserialize)]
pub struct FullTextFilter {
    #[serde(default)]
    term: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /entities/by-query`: the predicate language in the body.
pub async fn query_entities_by_predicate(
    State(state): State<AppState>,
    body: Result<Json<PredicateQuery>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body, "body is not a by-query request")?;
    let query = match &body.cursor {
        Some(cursor) => {
            let mut q = params::decode_cursor(cursor)?;
            if let Some(l) = body.limit {
                q.limit = Some(l);
            }
            q
        }
        None => {
            let order = body
                .order_by
                .iter()
                .map(|o| {
                    Ok(plinth_store::OrderField {
                        field: o.field.clone(),
                        direction: params::direction(&o.order)?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let full_text = body
                .full_text_filter
                .as_ref()
                .filter(|f| !f.term.trim().is_empty())
                .map(|f| {
                    let fields = if f.fields.is_empty() {
                        match order.first() {
                            Some(o) => vec![o.field.to_lowercase()],
                            None => DEFAULT_FULL_TEXT_FIELDS
                                .iter()
                                .map(|f| (*f).to_owned())
                                .collect(),
                        }
                    } else {
                        f.fields.iter().map(|f| f.to_lowercase()).collect()
                    };
                    (f.term.clone(), fields)
                });
            EntityQuery {
                filter: Vec::new(),
                predicate: params::body_predicate(body.query.as_ref())?,
                order,
                full_text,
                offset: body.offset.unwrap_or(0),
                limit: Some(body.limit.unwrap_or(DEFAULT_QUERY_LIMIT)),
            }
        }
    };
    answer_query(&state, query, &body.fields).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByRefs {
    entity_refs: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /entities/by-refs`: one item per reference, `null` where absent.
pub async fn entities_by_refs(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Json<ByRefs>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body, "body must be {\"entityRefs\": [...]}")?;
    let p = params::pairs(raw.as_deref());
    let mut fields = body.fields;
    fields.extend(params::fields(all(&p, "fields")));
    let refs: Vec<String> = body
        .entity_refs
        .iter()
        .map(|r| {
            EntityRef::parse(r, RefDefaults::default())
                .map(|r| r.to_string())
                .unwrap_or_default()
        })
        .collect();
    let found = state.store.entities_by_refs(&refs).await?;
    let filter = params::filter_sets(all(&p, "filter"))?;
    let mut items = Vec::with_capacity(found.len());
    for e in found {
        let keep = match &e {
            Some(e) if !filter.is_empty() => {
                // Filters apply per entity: check membership through the store.
                let q = EntityQuery {
                    filter: filter
                        .iter()
                        .map(|set| {
                            let mut set = set.clone();
                            set.push(plinth_store::Filter {
                                key: "metadata.uid".into(),
                                values: vec![e.uid.to_lowercase()],
                            });
                            set
                        })
                        .collect(),
                    limit: Some(1),
                    ..EntityQuery::default()
                };
                state.store.query_entities(&q).await?.total > 0
            }
            Some(_) => true,
            None => false,
        };
        items.push(e.filter(|_| keep));
    }
    let items: Vec<Option<EntityOut>> = items
        .iter()
        .map(|e| e.as_ref().map(|e| entity_json(e, &fields)))
        .collect();
    #[derive(Serialize)]
    struct Answer<'a> {
        items: Vec<Option<EntityOut<'a>>>,
    }
    Ok(Json(Answer { items }).into_response())
}

pub async fn entity_by_name(
    State(state): State<AppState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name);
    match state.store.entity_by_ref(&r).await? {
        Some(e) => Ok(Json(e.api()).into_response()),
        None => Err(ApiError::not_found(format!(
            "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        ))),
    }
}

/// `GET /entities/by-name/{kind}/{namespace}/{name}/ancestry`: the entity
/// and the Location entities that led to it, each with its parents.
pub async fn entity_ancestry(
    State(state): State<AppState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let root = EntityRef::new(&kind, &namespace, &name);
    let Some(entity) = state.store.entity_by_ref(&root).await? else {
        return Err(ApiError::not_found(format!(
            "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        )));
    };
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::from([entity.entity_ref.clone()]);
    let mut todo = vec![entity];
    while let Some(e) = todo.pop() {
        let parents = state.store.parents_of(&e).await?;
        items.push(json!({
            "entity": e.to_api_json(),
            "parentEntityRefs": parents.iter().map(|p| &p.entity_ref).collect::<Vec<_>>(),
        }));
        // Location entities may point at each other: each is listed once.
        todo.extend(
            parents
                .into_iter()
                .filter(|p| seen.insert(p.entity_ref.clone())),
        );
    }
    Ok(Json(
        json!({"rootEntityRef": root.to_string(), "items": items}),
    ))
}

pub async fn entity_by_uid(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.entity_by_uid(&uid).await? {
        Some(e) => Ok(Json(e.api()).into_response()),
        None => Err(ApiError::not_found(format!("No entity with uid {uid}"))),
    }
}

/// `DELETE /entities/by-uid/{uid}`: 204 whether or not it existed.
pub async fn delete_entity_by_uid(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(entity) = state.store.entity_by_uid(&uid).await? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    caller.allow(&Action::ChangeEntity {
        owners: &owners(&entity.relations),
    })?;
    let before = entity.to_api_json();
    let audit = |_: &()| {
        caller.entry(
            "entity.delete",
            &entity.entity_ref,
            Some(before.clone()),
            None,
        )
    };
    state.store.delete_entity_by_uid(&uid, Some(&audit)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /entity-facets?facet=kind&facet=spec.type&filter=`
pub async fn entity_facets(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<FacetsAnswer>, ApiError> {
    let p = params::pairs(raw.as_deref());
    let facets: Vec<String> = all(&p, "facet").map(str::to_owned).collect();
    let query = EntityQuery {
        filter: params::filter_sets(all(&p, "filter"))?,
        ..EntityQuery::default()
    };
    answer_facets(&state, &facets, &query).await
}

#[derive(Deserialize)]
pub struct FacetsByPredicate {
    facets: Vec<String>,
    #[serde(default)]
    query: Option<Value>,
}

/// `POST /entity-facets` with `{"facets": [...], "query": <predicate>}`:
/// the request-body twin of the GET form, with the predicate language.
pub async fn entity_facets_by_predicate(
    State(state): State<AppState>,
    body: Result<Json<FacetsByPredicate>, JsonRejection>,
) -> Result<Json<FacetsAnswer>, ApiError> {
    let body = json_body(
        body,
        "body must be {\"facets\": [\"kind\", ...], \"query\": {...}}",
    )?;
    let query = EntityQuery {
        predicate: params::body_predicate(body.query.as_ref())?,
        ..EntityQuery::default()
    };
    answer_facets(&state, &body.facets, &query).await
}

async fn answer_facets(
    state: &AppState,
    facets: &[String],
    query: &EntityQuery,
) -> Result<Json<FacetsAnswer>, ApiError> {
    if facets.is_empty() {
        return Err(ApiError::input(
            "name at least one facet, for example ?facet=kind",
        ));
    }
    // A facet named twice is answered once, as a JSON object has it.
    let mut named: Vec<String> = Vec::with_capacity(facets.len());
    for f in facets {
        if !named.contains(f) {
            named.push(f.clone());
        }
    }
    Ok(Json(FacetsAnswer(state.store.facets(&named, query).await?)))
}

/// `{"facets": {"kind": [{"value": "Component", "count": 3}, ...]}}`,
/// written straight from the store's cached values: at a million entities
/// the owner facet alone has 20,000 values, and building a JSON tree of
/// them for every call cost more than the rest of the answer.
pub struct FacetsAnswer(Vec<(String, std::sync::Arc<plinth_store::FacetValues>)>);

impl serde::Serialize for FacetsAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Values<'a>(&'a plinth_store::FacetValues);
        impl serde::Serialize for Values<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                #[derive(serde::Serialize)]
                struct Count<'a> {
                    value: &'a str,
                    count: u64,
                }
                s.collect_seq(self.0.iter().map(|(value, count)| Count {
                    value,
                    count: *count,
                }))
            }
        }
        struct Facets<'a>(&'a [(String, std::sync::Arc<plinth_store::FacetValues>)]);
        impl serde::Serialize for Facets<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(name, values)| (name, Values(values))))
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("facets", &Facets(&self.0))?;
        map.end()
    }
}

/// The location with this id, or the API's not-found error.
async fn find_location(state: &AppState, id: &str) -> Result<Location, ApiError> {
    state
        .store
        .location(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Found no location with ID {id}")))
}

fn location_json(l: &Location) -> Value {
    json!({"id": l.id, "type": l.kind, "target": l.target})
}

pub async fn get_locations(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let locations = state.store.locations().await?;
    Ok(Json(
        locations
            .iter()
            .map(|l| json!({"data": location_json(l)}))
            .collect(),
    ))
}

pub async fn get_location(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(location_json(&find_location(&state, &id).await?)))
}

#[derive(Deserialize)]
pub struct LocationQuery {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

/// `POST /locations/by-query`: locations matching a predicate over `id`,
/// `type` and `target`, a page at a time, oldest first.
pub async fn query_locations(
    State(state): State<AppState>,
    body: Result<Json<LocationQuery>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(
        body,
        "body must be {\"query\": {...}, \"limit\": n} or {\"cursor\": ...}",
    )?;
    let query = match &body.cursor {
        Some(cursor) => {
            let mut q = params::decode_cursor(cursor)?;
            q.limit = body.limit.or(q.limit);
            q
        }
        None => EntityQuery {
            predicate: params::body_predicate(body.query.as_ref())?,
            limit: body.limit,
            ..EntityQuery::default()
        },
    };
    let limit = query.limit.unwrap_or(DEFAULT_QUERY_LIMIT) as usize;
    let offset = query.offset as usize;
    let locations = state.store.locations().await?;
    let matching: Vec<&Location> = locations
        .iter()
        .filter(|l| {
            query.predicate.as_ref().is_none_or(|p| {
                p.matches(&|field: &str| match field {
                    "id" => vec![l.id.to_lowercase()],
                    "type" => vec![l.kind.to_lowercase()],
                    "target" => vec![l.target.to_lowercase()],
                    _ => Vec::new(),
                })
            })
        })
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|l| location_json(l))
        .collect();
    let mut page_info = serde_json::Map::new();
    if offset + limit < matching.len() {
        let next = EntityQuery {
            offset: (offset + limit) as u64,
            ..query.clone()
        };
        page_info.insert("nextCursor".into(), params::encode_cursor(&next).into());
    }
    Ok(Json(json!({
        "items": items,
        "totalItems": matching.len(),
        "pageInfo": page_info,
    })))
}

/// `PUT /locations/{id}`: a new type and target for a location, read at
/// once; entities the new target no longer gives are removed.
pub async fn update_location(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<NewLocation>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body, "body must be {\"type\": ..., \"target\": ...}")?;
    let before = find_location(&state, &id).await?;
    allow_location(&state, &caller, &id).await?;
    let target =
        ingest::check_location(&body.kind, &body.target, &state.ingest).map_err(ApiError::input)?;
    let audit = |after: &plinth_store::Location| {
        caller.entry(
            "location.update",
            &id,
            Some(location_json(&before)),
            Some(location_json(after)),
        )
    };
    let location = state
        .store
        .update_location(&id, &body.kind, &target, Some(&audit))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Found no location with ID {id}")))?;
    state.refresh(&location).await?;
    Ok(Json(location_json(&location)))
}

/// Allowed to change the location `id` (every entity in it theirs).
async fn allow_location(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let (owned_by, unowned) = state.store.location_owners(id).await?;
    let owned_by: Vec<EntityRef> = owned_by.iter().filter_map(|o| o.parse().ok()).collect();
    caller.allow(&Action::ChangeLocation {
        owners: &owned_by,
        unowned,
    })
}

/// plinth's addition: a location's last refresh, findings and conflicts.
pub async fn location_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let location = find_location(&state, &id).await?;
    let problems = state.store.location_problems(&id).await?;
    Ok(Json(json!({
        "location": location_json(&location),
        "refresh": location.refresh,
        "findings": problems.findings,
        "conflicts": problems.lost_conflicts.iter().map(|(r, file)| json!({
            "entityRef": r, "file": file,
            "message": format!("{r} is defined here and by another location, which keeps it"),
        })).chain(problems.won_conflicts.iter().map(|(r, other, file)| json!({
            "entityRef": r, "otherLocationId": other, "file": file,
            "message": format!("{r} is also defined in {file}; this location keeps it"),
        }))).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub struct NewLocation {
    #[serde(rename = "type")]
    kind: String,
    target: String,
}

/// `POST /locations[?dryRun=true]`: registers, refreshes at once, and
/// answers with the entities now visible.
pub async fn add_location(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    body: Result<Json<NewLocation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body, "body must be {\"type\": ..., \"target\": ...}")?;
    let p = params::pairs(raw.as_deref());
    let dry_run = one(&p, "dryRun").is_some_and(|v| v == "true");
    let target =
        ingest::check_location(&body.kind, &body.target, &state.ingest).map_err(ApiError::input)?;
    let existing = state.store.location_by_target(&body.kind, &target).await?;
    if dry_run {
        let (scratch, location, _) = read_unregistered(&state, &body.kind, &target).await?;
        let page = scratch.query_entities(&EntityQuery::default()).await?;
        // 201 as for a real registration: Backstage's client requires it.
        return Ok((
            StatusCode::CREATED,
            Json(DryRun {
                location: location_json(existing.as_ref().unwrap_or(&location)),
                entities: page.entities.iter().map(StoredEntity::api).collect(),
                exists: existing.is_some(),
            }),
        )
            .into_response());
    }
    caller.allow(&Action::RegisterLocation)?;
    if existing.is_some() {
        return Err(ApiError::conflict(format!(
            "Location {}:{target} already exists",
            body.kind
        )));
    }
    let audit = |added: &plinth_store::Location| {
        let after = json!({"location": location_json(added)});
        caller.entry("location.create", &added.id, None, Some(after))
    };
    let location = state
        .store
        .add_location(&body.kind, &target, Some(&audit))
        .await?;
    state.refresh(&location).await?;
    let entities = state.store.location_entities(&location.id).await?;
    let head = format!("{{\"location\":{},\"entities\":[", location_json(&location));
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(registered(head, entities)),
    )
        .into_response())
}

/// Entities of a registration's answer read and written at a time.
const REGISTERED_CHUNK: usize = 500;

/// The answer to `POST /locations` after `head`: its entities a chunk at a
/// time, written straight from the stored parts, so the server holds one
/// chunk however large the location (100,000 entities at once took
/// 1.2 GB for a 98 MB answer). A store error ends the answer short, which
/// the client sees as a broken body.
fn registered(
    head: String,
    entities: plinth_store::LocationEntities,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, plinth_store::StoreError>> {
    enum Part {
        Head(String, plinth_store::LocationEntities),
        /// Whether an entity was written already (the next needs a comma).
        Entities(plinth_store::LocationEntities, bool),
        Done,
    }
    futures_util::stream::unfold(Part::Head(head, entities), |part| async move {
        match part {
            Part::Head(head, entities) => {
                Some((Ok(head.into_bytes()), Part::Entities(entities, false)))
            }
            Part::Entities(mut entities, mut wrote) => {
                match entities.next_chunk(REGISTERED_CHUNK).await {
                    Ok(Some(chunk)) => {
                        let mut out = Vec::new();
                        for e in &chunk {
                            if wrote {
                                out.push(b',');
                            }
                            wrote = true;
                            // Into memory, with string keys only: cannot fail.
                            let _ = serde_json::to_writer(&mut out, &e.api());
                        }
                        Some((Ok(out), Part::Entities(entities, wrote)))
                    }
                    Ok(None) => Some((Ok(b"]}".to_vec()), Part::Done)),
                    Err(e) => {
                        tracing::error!(error = %e, "the registration's answer ended short");
                        Some((Err(e), Part::Done))
                    }
                }
            }
            Part::Done => None,
        }
    })
}

/// The answer to a dry run of `POST /locations`.
#[derive(Serialize)]
struct DryRun<'a> {
    location: Value,
    entities: Vec<ApiEntity<'a>>,
    /// Whether the location is registered already.
    exists: bool,
}

/// `DELETE /locations/{id}`: the location and every entity it gave.
pub async fn delete_location(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let location = find_location(&state, &id).await?;
    allow_location(&state, &caller, &id).await?;
    let _guard = state.refresh_lock.lock().await;
    let audit = |_: &()| caller.entry("location.delete", &id, Some(location_json(&location)), None);
    if state.store.delete_location(&id, Some(&audit)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "Found no location with ID {id}"
        )))
    }
}

pub async fn location_by_entity(
    State(state): State<AppState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name);
    match state.store.location_of(&r).await? {
        Some((l, _)) => Ok(Json(location_json(&l))),
        None => Err(ApiError::not_found(format!("found no location for {r}"))),
    }
}

/// plinth's addition: `POST /locations/{id}/refresh` refreshes one location
/// now and answers what changed.
pub async fn refresh_location_by_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let location = find_location(&state, &id).await?;
    caller.allow(&Action::Refresh)?;
    let entry = caller.entry("location.refresh", &id, None, None);
    let report = state
        .refresh_audited(
            &location,
            Box::new(move |summary| plinth_store::AuditEntry {
                after: Some(json!({ "summary": summary })),
                ..entry
            }),
        )
        .await?;
    let (status, message) = match &report.outcome {
        plinth_store::RefreshOutcome::Ok => ("ok", None),
        plinth_store::RefreshOutcome::Problems(m) => ("problems", Some(m.clone())),
        plinth_store::RefreshOutcome::Failed(m) => ("failed", Some(m.clone())),
    };
    Ok(Json(json!({
        "location": location_json(&location),
        "status": status,
        "message": message,
        "summary": report.summary,
        "findings": report.findings,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    entity_ref: String,
}

/// `POST /refresh {entityRef}`: refreshes the file the entity came from
/// now (its whole location when that file alone cannot answer, see
/// `plinth_catalog::ingest::refresh_file`); when it returns, the new state
/// is visible.
pub async fn refresh(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let body = json_body(body, "body must be {\"entityRef\": ...}")?;
    let r = EntityRef::parse(&body.entity_ref, RefDefaults::default())
        .map_err(|e| ApiError::input(e.to_string()))?;
    let Some((location, file)) = state.store.location_of(&r).await? else {
        return Err(ApiError::not_found(format!("No entity {r} found")));
    };
    caller.allow(&Action::Refresh)?;
    let entry = caller.entry("entity.refresh", &r.to_string(), None, None);
    let location_id = location.id.clone();
    state
        .refresh_file_audited(
            &location,
            &file,
            Box::new(move |summary| plinth_store::AuditEntry {
                after: Some(json!({ "locationId": location_id, "summary": summary })),
                ..entry
            }),
        )
        .await?;
    Ok(StatusCode::OK)
}

/// `location` is accepted for compatibility; validation does not need it.
#[derive(Deserialize)]
pub struct ValidateRequest {
    entity: Value,
}

/// Reads a location into a scratch in-memory store, as registering it
/// would, without touching the catalog.
async fn read_unregistered(
    state: &AppState,
    kind: &str,
    target: &str,
) -> Result<(plinth_store::Store, Location, ingest::RefreshReport), ApiError> {
    let scratch = plinth_store::Store::open_in_memory().await?;
    let location = scratch.add_location(kind, target, None).await?;
    let report = refresh_location(&scratch, &location, &state.ingest).await?;
    Ok((scratch, location, report))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzeLocation {
    location: NewLocation,
    #[serde(default, alias = "catalogFileName")]
    catalog_filename: Option<String>,
}

/// `POST /analyze-location`: what registering a location would give,
/// without registering it. The catalog files found, each entity marked
/// whether the catalog already has it from that file; or, when there are
/// none, a Component to start one with.
pub async fn analyze_location(
    State(state): State<AppState>,
    body: Result<Json<AnalyzeLocation>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(
        body,
        "body must be {\"location\": {\"type\": ..., \"target\": ...}}",
    )?;
    let kind = &body.location.kind;
    let target = ingest::check_location(kind, &body.location.target, &state.ingest)
        .map_err(ApiError::input)?;
    let (scratch, location, report) = read_unregistered(&state, kind, &target).await?;
    if let plinth_store::RefreshOutcome::Failed(message) = &report.outcome {
        return Err(ApiError::input(message.clone()));
    }
    let found = scratch.entities_of_location(&location.id).await?;
    let mut existing = Vec::new();
    for e in &found {
        let file = std::path::Path::new(&e.file);
        if let Some(wanted) = &body.catalog_filename
            && file.file_name().and_then(|n| n.to_str()) != Some(wanted.as_str())
        {
            continue;
        }
        let registered = match e.entity_ref.parse::<EntityRef>() {
            Ok(r) => state
                .store
                .entity_by_ref(&r)
                .await?
                .is_some_and(|known| known.file == e.file),
            Err(_) => false,
        };
        existing.push(json!({
            "location": {"type": "file", "target": e.file},
            "isRegistered": registered,
            "entity": e.body,
        }));
    }
    let generate = if existing.is_empty() {
        vec![json!({
            "entity": plinth_catalog::analyze::suggested_component(kind, &target),
            "fields": [],
        })]
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "existingEntityFiles": existing,
        "generateEntities": generate,
        "findings": report.findings,
    })))
}

/// `POST /validate-entity {location, entity}`: 200, or 400 with every
/// problem, each with its JSON pointer.
pub async fn validate_entity(
    State(state): State<AppState>,
    body: Result<Json<ValidateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body, "body must be {\"location\": ..., \"entity\": {...}}")?;
    Ok(
        match plinth_model::validate_entity(body.entity, &state.ingest.read.kinds) {
            Ok(_) => StatusCode::OK.into_response(),
            Err(invalid) => (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "errors": invalid.problems.iter().map(|p| json!({
                        "name": "InputError",
                        "message": p.to_string(),
                        "path": p.path.json_pointer(),
                    })).collect::<Vec<_>>(),
                })),
            )
                .into_response(),
        },
    )
}

/// plinth's ranked search for people: `GET /api/search?term=...&limit=`.
/// Every word must match; hits come best first with their score.
pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = params::pairs(raw.as_deref());
    let term = one(&p, "term").unwrap_or("").trim().to_owned();
    if term.is_empty() {
        return Err(ApiError::input(
            "term is required, for example ?term=payments",
        ));
    }
    let limit = params::number(&p, "limit")?.unwrap_or(20).min(100);
    let hits = state.store.search(&term, limit).await?;
    Ok(Json(json!({
        "term": term,
        "results": hits.iter().map(|h| json!({
            "entityRef": h.entity.entity_ref,
            "score": h.score,
            "entity": params::project(h.entity.to_api_json(), &[
                "kind".into(), "metadata.namespace".into(), "metadata.name".into(), "metadata.title".into(),
                "metadata.description".into(), "spec.type".into(), "spec.owner".into(),
            ]),
        })).collect::<Vec<_>>(),
    })))
}

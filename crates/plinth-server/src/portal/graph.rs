//! The relations of an entity drawn as SVG: the entity in the middle, its
//! neighbours on a ring around it, their neighbours (depth 2) on an outer
//! ring near the node that leads to them. Deterministic, so the drawing is
//! the same for the same catalog, and drawn on the server, so it needs no
//! script. Every node in the catalog is a link to its page.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Most nodes drawn on a ring; the rest are counted in a note.
pub(crate) const MAX_RING: usize = 24;
/// Most depth-2 nodes drawn per depth-1 node.
const MAX_FAN: usize = 6;

/// One node to draw: an entity reference and where its page is (none when
/// the reference names no entity in the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub entity_ref: String,
    pub href: Option<String>,
}

/// What to draw: the centre, its neighbours with the relation types that
/// join them, and for depth 2 the neighbours' own neighbours.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub centre: String,
    /// (neighbour, relation types from the centre to it)
    pub ring: Vec<(Node, Vec<String>)>,
    /// neighbour ref → its own neighbours (not the centre, not on the ring)
    pub outer: BTreeMap<String, Vec<(Node, Vec<String>)>>,
}

impl Graph {
    /// The SVG element, sized to its content.
    pub fn to_svg(&self) -> String {
        let ring: Vec<&(Node, Vec<String>)> = self.ring.iter().take(MAX_RING).collect();
        let depth2 = !self.outer.is_empty();
        let (r1x, r1y) = if depth2 {
            (300.0, 210.0)
        } else {
            (330.0, 170.0)
        };
        let (r2x, r2y) = (560.0, 390.0);
        let (w, h) = if depth2 {
            (1400.0, 960.0)
        } else {
            (960.0, 480.0)
        };
        let (cx, cy) = (w / 2.0, h / 2.0);
        let mut edges = String::new();
        let mut nodes = String::new();
        let centre_ref = self.centre.as_str();
        node(&mut nodes, cx, cy, centre_ref, None, "centre");
        let n = ring.len().max(1) as f64;
        // An entity reached from two neighbours is drawn once, with an edge
        // from each.
        let mut placed: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (i, (nb, types)) in ring.iter().enumerate() {
            // Start at the top, clockwise.
            let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n;
            let (x, y) = (cx + r1x * angle.cos(), cy + r1y * angle.sin());
            edge(&mut edges, (cx, cy), (x, y), &types.join(", "));
            if let Some(fan) = self.outer.get(&nb.entity_ref) {
                let (drawn, shown): (Vec<_>, Vec<_>) = fan
                    .iter()
                    .take(MAX_FAN)
                    .partition(|(nb2, _)| placed.contains_key(nb2.entity_ref.as_str()));
                for (nb2, types2) in drawn {
                    let at = placed[nb2.entity_ref.as_str()];
                    edge(&mut edges, (x, y), at, &types2.join(", "));
                }
                let spread = (std::f64::consts::TAU / n).min(0.9);
                let m = shown.len();
                for (j, (nb2, types2)) in shown.iter().enumerate() {
                    let offset = if m > 1 {
                        spread * (j as f64 / (m - 1) as f64 - 0.5)
                    } else {
                        0.0
                    };
                    let a = angle + offset;
                    let (x2, y2) = (cx + r2x * a.cos(), cy + r2y * a.sin());
                    edge(&mut edges, (x, y), (x2, y2), &types2.join(", "));
                    node(
                        &mut nodes,
                        x2,
                        y2,
                        &nb2.entity_ref,
                        nb2.href.as_deref(),
                        "far",
                    );
                    placed.insert(&nb2.entity_ref, (x2, y2));
                }
                if fan.len() > MAX_FAN {
                    let (x2, y2) = (
                        cx + (r2x + 90.0) * angle.cos(),
                        cy + (r2y + 40.0) * angle.sin(),
                    );
                    let _ = write!(
                        nodes,
                        r#"<text class="more" x="{x2:.0}" y="{y2:.0}" text-anchor="middle">+{} more</text>"#,
                        fan.len() - MAX_FAN
                    );
                }
            }
            node(&mut nodes, x, y, &nb.entity_ref, nb.href.as_deref(), "near");
        }
        let mut note = String::new();
        if self.ring.len() > MAX_RING {
            let _ = write!(
                note,
                r#"<text class="more" x="{cx:.0}" y="{:.0}" text-anchor="middle">{} more relations are listed below</text>"#,
                h - 12.0,
                self.ring.len() - MAX_RING
            );
        }
        format!(
            r#"<svg class="graph" viewBox="0 0 {w:.0} {h:.0}" role="group" aria-labelledby="graph-title" xmlns="http://www.w3.org/2000/svg"><title id="graph-title">Relations of {}</title><g class="edges">{edges}</g><g class="nodes">{nodes}</g>{note}</svg>"#,
            escape(centre_ref)
        )
    }
}

fn edge(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), label: &str) {
    let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    let _ = write!(
        out,
        r#"<line x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}"/><text class="edge-label" x="{mx:.0}" y="{my:.0}" text-anchor="middle">{}</text>"#,
        escape(label)
    );
}

fn node(out: &mut String, x: f64, y: f64, entity_ref: &str, href: Option<&str>, class: &str) {
    let (kind, name) = match entity_ref.split_once(':') {
        Some((k, rest)) => (k, rest.strip_prefix("default/").unwrap_or(rest)),
        None => ("", entity_ref),
    };
    let name_shown = shorten(name, 26);
    let width = (name_shown.chars().count().max(kind.len()) as f64 * 7.4 + 24.0).max(90.0);
    let (rx, ry) = (x - width / 2.0, y - 22.0);
    let body = format!(
        r#"<rect x="{rx:.0}" y="{ry:.0}" width="{width:.0}" height="44" rx="8"/><text class="kind" x="{x:.0}" y="{:.0}" text-anchor="middle">{}</text><text x="{x:.0}" y="{:.0}" text-anchor="middle">{}</text>"#,
        y - 5.0,
        escape(kind),
        y + 13.0,
        escape(&name_shown)
    );
    match href {
        Some(href) => {
            let _ = write!(
                out,
                r#"<a href="{}" class="node {class}" aria-label="{}"><title>{}</title>{body}</a>"#,
                escape(href),
                escape(entity_ref),
                escape(entity_ref)
            );
        }
        None if class == "centre" => {
            let _ = write!(out, r#"<g class="node {class}">{body}</g>"#);
        }
        None => {
            let _ = write!(
                out,
                r#"<g class="node {class} missing"><title>{} (not in the catalog)</title>{body}</g>"#,
                escape(entity_ref)
            );
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Text for SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(r: &str, present: bool) -> Node {
        Node {
            entity_ref: r.into(),
            href: present.then(|| format!("/x/{r}")),
        }
    }

    #[test]
    fn neighbours_link_missing_ones_do_not_and_shared_ones_are_drawn_once() {
        let mut g = Graph {
            centre: "component:default/a".into(),
            ring: vec![
                (node("group:default/team", true), vec!["ownedBy".into()]),
                (node("system:default/gone", false), vec!["partOf".into()]),
                (node("api:default/b<c>", true), vec!["providesApi".into()]),
            ],
            ..Graph::default()
        };
        g.outer.insert(
            "group:default/team".into(),
            vec![(node("user:default/u", true), vec!["hasMember".into()])],
        );
        g.outer.insert(
            "api:default/b<c>".into(),
            vec![(node("user:default/u", true), vec!["ownedBy".into()])],
        );
        let svg = g.to_svg();
        assert_eq!(svg, g.to_svg(), "the same drawing every time");
        assert!(svg.contains(
            r#"<a href="/x/group:default/team" class="node near" aria-label="group:default/team">"#
        ));
        assert!(svg.contains(r#"<g class="node near missing"><title>system:default/gone (not in the catalog)</title>"#));
        assert!(
            svg.contains("api:default/b&lt;c&gt;") && !svg.contains("b<c>"),
            "text is escaped"
        );
        assert_eq!(svg.matches(r#"aria-label="user:default/u""#).count(), 1);
        // centre→3 neighbours, and two edges to the shared user
        assert_eq!(svg.matches("<line ").count(), 5);
    }
}

//! The budget's table: one row per stage, one column per request path.

use std::fmt::Write;

use super::Cost;

/// A stage of a request, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The session cookie read and the id parsed (actix: decrypted).
    CookieIn,
    /// The id as text and its HMAC: the stored `_id`.
    IdHash,
    /// The driver's `findOne` by `_id`, bytes back: the raw floor of a read.
    Find,
    /// The document's fields and values decoded.
    Decode,
    /// What the load prepares for the save: fingerprints, handle, lineage.
    Prepare,
    /// The tracking entry put into the session map.
    Tracking,
    /// The map as the framework holds it.
    ToFramework,
    /// The load's span and metrics.
    LoadObserved,
    /// The whole load less the stages above.
    LoadRest,
    /// The adapter's whole load, measured.
    LoadWhole,
    /// The framework's map back as values (actix: JSON text parsed).
    FromFramework,
    /// The tracking entry read back and every key compared with it.
    Compare,
    /// The rest of the plan: checks, and the update of a modify.
    Plan,
    /// The write through the driver, the store's filter and update.
    Write,
    /// The raw floor of a write: `updateOne` of one field by `_id`.
    RawUpdate,
    /// The save's span and metrics.
    SaveObserved,
    /// The whole save less the stages above.
    SaveRest,
    /// The adapter's whole save (actix read: `update_ttl`), measured.
    SaveWhole,
    /// The cookie set on the response (actix: encrypted).
    CookieOut,
}

impl Stage {
    /// Every stage, in table order.
    pub const ALL: [Stage; 19] = [
        Stage::CookieIn,
        Stage::IdHash,
        Stage::Find,
        Stage::Decode,
        Stage::Prepare,
        Stage::Tracking,
        Stage::ToFramework,
        Stage::LoadObserved,
        Stage::LoadRest,
        Stage::LoadWhole,
        Stage::FromFramework,
        Stage::Compare,
        Stage::Plan,
        Stage::Write,
        Stage::RawUpdate,
        Stage::SaveObserved,
        Stage::SaveRest,
        Stage::SaveWhole,
        Stage::CookieOut,
    ];

    fn label(self) -> &'static str {
        match self {
            Stage::CookieIn => "cookie in: parsed (actix: decrypted), id read",
            Stage::IdHash => "id hash (id as text, HMAC-SHA-256)",
            Stage::Find => "driver: findOne (ours: by _id, bytes = the raw floor)",
            Stage::Decode => "decode: fields and values from the bytes",
            Stage::Prepare => "load prepares the save: fingerprints, handle, lineage",
            Stage::Tracking => "load prepares the save: tracking entry into the map",
            Stage::ToFramework => "conversion to the framework's types",
            Stage::LoadObserved => "load: span and metrics",
            Stage::LoadRest => "load: the rest (timeout, touch hint, glue)",
            Stage::LoadWhole => "**load: the adapter's whole call**",
            Stage::FromFramework => "conversion from the framework's types",
            Stage::Compare => "save's comparison: tracking entry read back, keys compared",
            Stage::Plan => "save's plan beyond the comparison: checks, the update",
            Stage::Write => "driver: the write (the store's filter and update)",
            Stage::RawUpdate => "raw floor: updateOne of one field by _id",
            Stage::SaveObserved => "save: span and metrics",
            Stage::SaveRest => "save: the rest (timeout, cache, events, glue)",
            Stage::SaveWhole => "**save: the adapter's whole call**",
            Stage::CookieOut => "cookie out: built and encoded (actix: encrypted)",
        }
    }

    /// Stages inside the whole load or save that the rest is taken from.
    fn parts_of(self) -> &'static [Stage] {
        match self {
            Stage::LoadRest => &[
                Stage::IdHash,
                Stage::Find,
                Stage::Decode,
                Stage::Prepare,
                Stage::Tracking,
                Stage::ToFramework,
                Stage::LoadObserved,
            ],
            Stage::SaveRest => &[
                Stage::FromFramework,
                Stage::Compare,
                Stage::Plan,
                Stage::Write,
                Stage::SaveObserved,
            ],
            _ => &[],
        }
    }
}

/// One request path: its stages' costs.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its heading.
    pub name: String,
    cells: Vec<(Stage, Cost)>,
    /// The raw driver's floor of the same round trips.
    floor: Cost,
}

impl Column {
    /// An empty column.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cells: Vec::new(),
            floor: Cost::ZERO,
        }
    }

    /// Records `stage`'s cost.
    pub fn set(&mut self, stage: Stage, cost: Cost) -> &mut Self {
        self.cells.retain(|(s, _)| *s != stage);
        self.cells.push((stage, cost));
        self
    }

    /// The raw driver's floor of the request's round trips (`findOne` by
    /// `_id`; plus `updateOne` of one field for a modify).
    pub fn set_floor(&mut self, floor: Cost) -> &mut Self {
        self.floor = floor;
        self
    }

    /// `stage`'s cost, if measured.
    pub fn get(&self, stage: Stage) -> Option<Cost> {
        self.cells
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, c)| *c)
    }

    /// The cheaper of each stage's two figures (µs and allocations apart),
    /// of two passes of the same measurements.
    pub fn fastest_with(&mut self, other: &Column) {
        for (stage, cost) in &mut self.cells {
            if let Some(theirs) = other.get(*stage) {
                cost.us = cost.us.min(theirs.us);
                cost.allocations = cost.allocations.min(theirs.allocations);
            }
        }
        self.floor.us = self.floor.us.min(other.floor.us);
        self.floor.allocations = self.floor.allocations.min(other.floor.allocations);
    }

    /// Fills the "rest" rows: each whole call less its measured parts.
    pub fn derive_rests(&mut self) -> &mut Self {
        for (rest, whole) in [
            (Stage::LoadRest, Stage::LoadWhole),
            (Stage::SaveRest, Stage::SaveWhole),
        ] {
            if let Some(whole) = self.get(whole) {
                let parts = rest
                    .parts_of()
                    .iter()
                    .filter_map(|s| self.get(*s))
                    .fold(Cost::ZERO, Cost::plus);
                self.set(rest, whole.minus(parts));
            }
        }
        self
    }

    /// The request: cookies, the whole load and the whole save.
    pub fn request(&self) -> Cost {
        [
            Stage::CookieIn,
            Stage::LoadWhole,
            Stage::SaveWhole,
            Stage::CookieOut,
        ]
        .iter()
        .filter_map(|s| self.get(*s))
        .fold(Cost::ZERO, Cost::plus)
    }

    /// The request less the raw driver's floor for the same round trips.
    pub fn beyond_floor(&self) -> Cost {
        self.request().minus(self.floor)
    }
}

fn cell(cost: Option<Cost>) -> String {
    match cost {
        Some(c) => format!("{:.1} µs / {:.0}", c.us, c.allocations),
        None => "–".into(),
    }
}

/// The columns as a Markdown table: µs of CPU / allocations per call.
pub fn markdown(columns: &[Column]) -> String {
    let mut out = String::from("| stage |");
    for column in columns {
        let _ = write!(out, " {} |", column.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    for stage in Stage::ALL {
        if columns.iter().all(|c| c.get(stage).is_none()) {
            continue;
        }
        let _ = write!(out, "| {} |", stage.label());
        for column in columns {
            let _ = write!(out, " {} |", cell(column.get(stage)));
        }
        out.push('\n');
    }
    for (label, figure) in [
        (
            "**the request: cookies, load, save**",
            Column::request as fn(&Column) -> Cost,
        ),
        (
            "**beyond the raw driver's floor (findOne; + updateOne)**",
            Column::beyond_floor,
        ),
    ] {
        let _ = write!(out, "| {label} |");
        for column in columns {
            let _ = write!(out, " **{}** |", cell(Some(figure(column))));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(us: f64, allocations: f64) -> Cost {
        Cost { us, allocations }
    }

    #[test]
    fn the_rest_is_the_whole_less_its_parts_and_the_floor_comes_off_the_request() {
        let mut column = Column::new("tower read");
        column
            .set(Stage::CookieIn, cost(1.0, 2.0))
            .set(Stage::Find, cost(30.0, 150.0))
            .set(Stage::Decode, cost(5.0, 40.0))
            .set(Stage::LoadWhole, cost(40.0, 200.0))
            .set(Stage::CookieOut, cost(2.0, 3.0))
            .set_floor(cost(30.0, 150.0))
            .derive_rests();
        assert_eq!(column.get(Stage::LoadRest), Some(cost(5.0, 10.0)));
        assert_eq!(column.get(Stage::SaveRest), None);
        assert_eq!(column.request(), cost(43.0, 205.0));
        assert_eq!(column.beyond_floor(), cost(13.0, 55.0));
        let table = markdown(&[column]);
        assert!(table.contains("| load: the rest (timeout, touch hint, glue) | 5.0 µs / 10 |"));
        assert!(!table.contains("save: the rest"), "{table}");
    }
}

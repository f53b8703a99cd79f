//! Parses the `Prefer` header: the preferences this app honours, and what it echoes back in
//! `Preference-Applied`. Pure: no I/O.

/// `return=` of the `Prefer` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPref {
    Minimal,
    Representation,
}

/// `resolution=` of the `Prefer` header: a POST becomes an upsert (PostgREST's
/// `PreferResolution`, `src/PostgREST/ApiRequest/Preferences.hs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `merge-duplicates`: `ON CONFLICT (…) DO UPDATE SET` every column sent.
    MergeDuplicates,
    /// `ignore-duplicates`: `ON CONFLICT (…) DO NOTHING`.
    IgnoreDuplicates,
}

/// The `Prefer` preferences this app honours; others are ignored, as PostgREST does by
/// default (`handling=lenient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preferences {
    pub return_pref: Option<ReturnPref>,
    /// `count=exact` (also `planned`/`estimated`, answered exactly: the table is small).
    pub count: bool,
    /// Only a POST honours it, and only with a key to conflict on.
    pub resolution: Option<Resolution>,
}

impl Preferences {
    /// Reads every `Prefer` header value (each may list several, comma-separated).
    /// `return=headers-only` is treated as `minimal`, since this app sends no `Location`.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut prefs = Self::default();
        for pref in values.into_iter().flat_map(|v| v.split(',')) {
            match pref.trim().split_once('=') {
                Some(("return", "representation")) => {
                    prefs.return_pref = Some(ReturnPref::Representation);
                }
                Some(("return", "minimal" | "headers-only")) => {
                    prefs.return_pref = Some(ReturnPref::Minimal);
                }
                Some(("count", "exact" | "planned" | "estimated")) => prefs.count = true,
                Some(("resolution", "merge-duplicates")) => {
                    prefs.resolution = Some(Resolution::MergeDuplicates);
                }
                Some(("resolution", "ignore-duplicates")) => {
                    prefs.resolution = Some(Resolution::IgnoreDuplicates);
                }
                _ => {}
            }
        }
        prefs
    }

    /// The `Preference-Applied` value, as PostgREST echoes what it honoured.
    pub fn applied(&self) -> Option<String> {
        let mut parts = Vec::new();
        // PostgREST's order: resolution, return, count (`prefAppliedHeader`).
        match self.resolution {
            Some(Resolution::MergeDuplicates) => parts.push("resolution=merge-duplicates"),
            Some(Resolution::IgnoreDuplicates) => parts.push("resolution=ignore-duplicates"),
            None => {}
        }
        match self.return_pref {
            Some(ReturnPref::Representation) => parts.push("return=representation"),
            Some(ReturnPref::Minimal) => parts.push("return=minimal"),
            None => {}
        }
        if self.count {
            parts.push("count=exact");
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_header() {
        assert_eq!(Preferences::parse([]), Preferences::default());
        let p = Preferences::parse(["return=representation, count=exact"]);
        assert_eq!(p.return_pref, Some(ReturnPref::Representation));
        assert!(p.count);
        assert_eq!(
            p.applied().as_deref(),
            Some("return=representation, count=exact")
        );
        let p = Preferences::parse(["count=planned", "return=minimal", "tx=rollback", "junk"]);
        assert_eq!(p.return_pref, Some(ReturnPref::Minimal));
        assert!(p.count);
        let p = Preferences::parse(["return=headers-only"]);
        assert_eq!(p.return_pref, Some(ReturnPref::Minimal));
        assert_eq!(Preferences::parse(["return=everything"]).return_pref, None);
        assert_eq!(Preferences::default().applied(), None);
    }
}

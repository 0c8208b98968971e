//! The one font face charts use, compiled into the binary so that text renders the same on a
//! machine with no fonts installed. Layout measures text with the same face the rasterizer
//! draws it with, so legend boxes and margins fit the labels.

use resvg::usvg::fontdb;
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};
use std::sync::{Arc, OnceLock};

/// Roboto Regular, Apache-2.0 (see `assets/README.md`).
const FACE: &[u8] = include_bytes!("../../assets/Roboto-Regular.ttf");

/// The family name written into the SVG; viewers without Roboto fall back to the generic
/// `sans-serif` that follows it.
pub(crate) const FAMILY: &str = "Roboto, Helvetica, Arial, sans-serif";

/// Width of one em assumed for characters the face lacks.
const MISSING_GLYPH_EM: f64 = 0.6;

/// The width in pixels of `text` set at `size` pixels (advance widths, no kerning).
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    let Ok(font) = FontRef::new(FACE) else {
        return text.chars().count() as f64 * MISSING_GLYPH_EM * size;
    };
    let charmap = font.charmap();
    let metrics = font.glyph_metrics(Size::new(size as f32), LocationRef::default());
    text.chars()
        .map(|c| {
            charmap
                .map(c)
                .and_then(|glyph| metrics.advance_width(glyph))
                .map_or(MISSING_GLYPH_EM * size, f64::from)
        })
        .sum()
}

/// A font database holding only the embedded face, which also serves as `sans-serif`.
pub(crate) fn database() -> Arc<fontdb::Database> {
    static DATABASE: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DATABASE
        .get_or_init(|| {
            let mut db = fontdb::Database::new();
            db.load_font_source(fontdb::Source::Binary(Arc::new(FACE)));
            db.set_sans_serif_family("Roboto");
            Arc::new(db)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_face_loads_and_is_named_roboto() {
        let db = database();
        assert_eq!(db.len(), 1);
        let face = db.faces().next().unwrap();
        assert!(face.families.iter().any(|(name, _)| name == "Roboto"), "{:?}", face.families);
    }

    #[test]
    fn text_width_comes_from_the_face_and_scales_with_size() {
        let w = text_width("winning ticket", 10.0);
        // A proportional face: every glyph narrower than an em, "i" narrower than "w".
        assert!(w > 3.0 * 10.0 && w < 14.0 * 10.0, "{w}");
        assert!(text_width("iiii", 10.0) < text_width("wwww", 10.0));
        assert!((text_width("winning ticket", 20.0) - 2.0 * w).abs() < 1e-3);
        assert_eq!(text_width("", 12.0), 0.0);
    }
}

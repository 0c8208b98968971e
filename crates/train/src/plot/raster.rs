//! SVG to PNG with a pure-Rust stack (usvg parses, resvg draws with tiny-skia), using only the
//! embedded font, so a PNG renders identically on any machine.

use super::font;
use resvg::tiny_skia::{Color, Pixmap, Transform};
use resvg::usvg;

/// Draws `svg` on a white canvas of the SVG's own size and encodes it as PNG. The error is a
/// short description of what failed.
pub(crate) fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let options = usvg::Options {
        font_family: "Roboto".to_string(),
        fontdb: font::database(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| format!("invalid SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("cannot allocate a {}x{} image", size.width(), size.height()))?;
    pixmap.fill(Color::WHITE);
    resvg::render(&tree, Transform::identity(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("cannot encode PNG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_shapes_and_text_at_their_coordinates() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">
            <rect x="10" y="10" width="20" height="20" fill="#0072B2"/>
            <text x="50" y="40" font-size="24" font-family="Roboto" fill="#000">Hi</text>
        </svg>"##;
        let png = svg_to_png(svg).unwrap();
        let pixmap = Pixmap::decode_png(&png).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (120, 60));
        let p = pixmap.pixel(20, 20).unwrap();
        assert_eq!((p.red(), p.green(), p.blue()), (0x00, 0x72, 0xB2));
        let p = pixmap.pixel(5, 50).unwrap();
        assert_eq!((p.red(), p.green(), p.blue()), (255, 255, 255));
        // The glyphs of "Hi" cover some pixels of their box, and only there.
        let dark = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (15..45).map(move |y| (x, y)))
                .filter(|&(x, y)| pixmap.pixel(x, y).unwrap().red() < 100)
                .count()
        };
        assert!(dark(48, 80) > 30, "no text drawn");
        assert_eq!(dark(90, 120), 0);
    }

    #[test]
    fn malformed_svg_is_an_error() {
        let err = svg_to_png("<svg").unwrap_err();
        assert!(err.starts_with("invalid SVG"), "{err}");
    }
}

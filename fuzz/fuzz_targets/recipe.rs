//! The recipe parser on arbitrary text: a recipe it accepts has a usable architecture and
//! survives a round trip through TOML unchanged; anything else is a one-line error naming the
//! file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::Recipe;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Recipe::from_toml_str(text, ticket_fuzz::path()) {
        Ok(recipe) => {
            let graph = recipe.graph().expect("a validated recipe has an architecture");
            assert!(graph.dense_params() >= graph.dense_weights());
            let again = toml::to_string(&recipe).expect("a recipe serializes");
            let back = Recipe::from_toml_str(&again, "round-trip.toml")
                .unwrap_or_else(|e| panic!("the serialized recipe does not parse: {e}\n{again}"));
            assert_eq!(back, recipe);
        }
        Err(err) => ticket_fuzz::check_error(err),
    }
});

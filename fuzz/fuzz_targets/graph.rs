//! The model graph parser (`__metadata__["graph"]` of version-2 files) on arbitrary text: a
//! graph it accepts has consistent shapes and weighted layers, and its JSON parses back to the
//! same graph; anything else is an error saying it is about the graph (the file loaders add
//! the path and keep it on one line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::Graph;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let graph = match Graph::from_json(text) {
        Ok(g) => g,
        Err(err) => return assert!(err.to_string().starts_with("graph: "), "{err}"),
    };
    let json = graph.to_json();
    let back = Graph::from_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(back, graph);
    assert_eq!(back.to_json(), json);
    assert_eq!(graph.output_shape(graph.layers().len() - 1), [graph.outputs()]);
    for w in graph.weighted() {
        assert_eq!(graph.layers()[w.index].weight_dims().as_ref(), Some(&w.dims));
        assert_eq!(w.shape.rows * w.shape.cols, w.dims.iter().product::<usize>());
    }
    assert!(graph.dense_params() <= ticket_core::graph::MAX_PARAMS);
});

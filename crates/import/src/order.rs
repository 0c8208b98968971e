//! The order of a state dict's layers, which the file does not record (safetensors sorts its
//! tensors by name). Module names give it when they sort that way with numbers compared as
//! numbers (`0, 2, 4, 10`; `fc1, fc2, fc10`) and the shapes chain in that order; otherwise
//! the one order in which the shapes chain (`input_layer, hidden, head`); otherwise the user
//! says it with `--layers`.

use std::cmp::Ordering;

/// A module's name and its weight's `[out, in]`.
#[derive(Clone, Debug)]
pub struct Module {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
}

/// Compares names piece by piece, runs of digits by value: `layers.2 < layers.10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

/// Whether each module's `in` is the previous one's `out`.
fn chains(modules: &[&Module]) -> bool {
    modules.windows(2).all(|w| w[0].rows == w[1].cols)
}

/// How many chaining orders to look for before calling the order ambiguous.
const ENOUGH: usize = 2;

/// Steps the search may take: many layers of equal shapes would otherwise make it try every
/// permutation. Past it the order is as good as ambiguous.
const BUDGET: usize = 100_000;

/// The modules in network order, or why it cannot be told.
pub fn infer_order(modules: &[Module]) -> Result<Vec<Module>, String> {
    let mut by_name: Vec<&Module> = modules.iter().collect();
    by_name.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    if chains(&by_name) {
        return Ok(by_name.into_iter().cloned().collect());
    }
    let mut found = Vec::new();
    let mut path = Vec::new();
    let mut used = vec![false; by_name.len()];
    let mut budget = BUDGET;
    search(&by_name, &mut path, &mut used, &mut found, &mut budget);
    let listed = || {
        by_name
            .iter()
            .map(|m| format!("{} [{}, {}]", m.name, m.rows, m.cols))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // An exhausted budget means too many candidates to tell: as ambiguous as two orders.
    match found.as_slice() {
        [order] if budget > 0 => Ok(order.iter().map(|&i| by_name[i].clone()).collect()),
        [] if budget > 0 => Err(format!(
            "the shapes of its layers do not chain in any order ({}): out of one layer must be in of the next",
            listed()
        )),
        _ => Err(format!(
            "the layer order cannot be told from the names and shapes ({}): pass --layers a,b,c",
            listed()
        )),
    }
}

/// Depth-first search for up to [`ENOUGH`] orders in which the shapes chain.
fn search(
    modules: &[&Module],
    path: &mut Vec<usize>,
    used: &mut [bool],
    found: &mut Vec<Vec<usize>>,
    budget: &mut usize,
) {
    if found.len() >= ENOUGH || *budget == 0 {
        return;
    }
    *budget -= 1;
    if path.len() == modules.len() {
        found.push(path.clone());
        return;
    }
    for i in 0..modules.len() {
        let fits = path.last().is_none_or(|&p| modules[p].rows == modules[i].cols);
        if !used[i] && fits {
            used[i] = true;
            path.push(i);
            search(modules, path, used, found, budget);
            path.pop();
            used[i] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, rows: usize, cols: usize) -> Module {
        Module { name: name.into(), rows, cols }
    }

    fn names(order: &[Module]) -> Vec<&str> {
        order.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn numbers_in_names_compare_as_numbers() {
        let mut v = vec!["net.10", "net.2", "net.0", "fc10", "fc2", "fc1", "net.02"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["fc1", "fc2", "fc10", "net.0", "net.2", "net.02", "net.10"]);
    }

    #[test]
    fn name_order_wins_when_it_chains() {
        let mods = [m("layers.10", 10, 32), m("layers.2", 32, 64), m("layers.0", 64, 784)];
        assert_eq!(names(&infer_order(&mods).unwrap()), ["layers.0", "layers.2", "layers.10"]);
    }

    #[test]
    fn attribute_names_are_ordered_by_chaining_shapes() {
        // Alphabetically head < hidden < input_layer, which does not chain.
        let mods = [m("head", 10, 32), m("hidden", 32, 64), m("input_layer", 64, 784)];
        assert_eq!(names(&infer_order(&mods).unwrap()), ["input_layer", "hidden", "head"]);
    }

    #[test]
    fn ambiguous_and_impossible_orders_are_refused() {
        let square = [m("b", 8, 8), m("a", 8, 8), m("c", 8, 8)];
        // Names chain here, so they win.
        assert_eq!(names(&infer_order(&square).unwrap()), ["a", "b", "c"]);
        let two_ways = [m("z", 8, 8), m("y", 8, 4), m("x", 8, 8)];
        let err = infer_order(&two_ways).unwrap_err();
        assert!(err.contains("pass --layers"), "{err}");
        let broken = [m("a", 8, 4), m("b", 3, 9)];
        assert!(infer_order(&broken).unwrap_err().contains("do not chain"));
        // Twenty equal layers and one that must come first but sorts last: the search gives
        // up (ambiguous) instead of trying 20! orders.
        let mut many: Vec<Module> = (0..20).map(|i| m(&format!("a{i}"), 8, 8)).collect();
        many.push(m("z", 8, 4));
        assert!(infer_order(&many).unwrap_err().contains("pass --layers"));
    }
}

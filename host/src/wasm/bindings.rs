//! Host bindings generated from the contract, one module per version the
//! host speaks: [`v3`] from `wit/transform.wit` (the current one), [`v2`]
//! from `wit/v0.2.0/transform.wit` and [`v1`] from
//! `wit/v0.1.0/transform.wit`. State calls are trappable: a
//! write during `init`, an oversized key or value, or a storage failure
//! ends the call.

/// `quiver:transform@0.1.0`: one list element per input record.
pub(super) mod v1 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit/v0.1.0",
        imports: {
            "quiver:transform/state": trappable,
        },
        // Input records are lowered straight from the stored batch bytes,
        // without an owned copy per record on the host.
        ownership: Borrowing {
            duplicate_if_necessary: true
        },
    });
}

/// `quiver:transform@0.2.0`: the stored batches as byte lists.
pub(super) mod v2 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit/v0.2.0",
        imports: {
            "quiver:transform/state": trappable,
        },
        ownership: Borrowing {
            duplicate_if_necessary: true
        },
    });
}

/// `quiver:transform@0.3.0`: as 0.2.0, with nullable output values.
pub(super) mod v3 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        imports: {
            "quiver:transform/state": trappable,
        },
        ownership: Borrowing {
            duplicate_if_necessary: true
        },
    });
}

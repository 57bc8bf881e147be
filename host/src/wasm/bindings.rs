//! Host bindings generated from `wit/transform.wit`, the one source of the
//! contract. State calls are trappable: a write during `init`, an oversized
//! key or value, or a storage failure ends the call.

wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit",
    imports: {
        "quiver:transform/state": trappable,
    },
    // Input records are lowered straight from the stored batch bytes,
    // without an owned copy per record on the host.
    ownership: Borrowing {
        duplicate_if_necessary: true
    },
});

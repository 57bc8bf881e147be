//! Host bindings generated from `wit/transform.wit`, the one source of the
//! contract. State calls are trappable: a write during `init`, an oversized
//! key or value, or a storage failure ends the call.

wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit",
    imports: {
        "quiver:transform/state": trappable,
    },
});

//! The page's few transcendental functions (sine, cosine, log10, powers),
//! from the browser's `Math` in the page rather than compiled in: Rust's
//! own (libm's argument reduction and `pow`) cost the page about 4 KB gzip'd
//! (BENCHMARKS.md, Web, Size). Natively (the tests) they are the standard
//! library's. Both are fdlibm's algorithms.

/// `x.sin()`.
pub fn sin(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Math::sin(x);
    #[cfg(not(target_arch = "wasm32"))]
    return x.sin();
}

/// `x.cos()`.
pub fn cos(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Math::cos(x);
    #[cfg(not(target_arch = "wasm32"))]
    return x.cos();
}

/// `x.log10()`.
pub fn log10(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Math::log10(x);
    #[cfg(not(target_arch = "wasm32"))]
    return x.log10();
}

/// `base.powf(exponent)`.
pub fn pow(base: f64, exponent: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Math::pow(base, exponent);
    #[cfg(not(target_arch = "wasm32"))]
    return base.powf(exponent);
}

//! Reading `--flag value` pairs from the command line: the one loop both load
//! generators (`loadgen`, `sbload`) parse their arguments with.

/// Every `--flag value` pair after the program name; `usage` on `-h`/`--help` or a
/// flag without a value.
pub fn pairs(usage: fn() -> !) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage();
        }
        let Some(value) = it.next() else {
            eprintln!("missing value for {flag}");
            usage()
        };
        out.push((flag, value));
    }
    out
}

/// The number `value` of `flag`, or `usage`.
pub fn number(flag: &str, value: &str, usage: fn() -> !) -> f64 {
    value.parse().unwrap_or_else(|_| {
        eprintln!("bad number for {flag}: {value}");
        usage()
    })
}

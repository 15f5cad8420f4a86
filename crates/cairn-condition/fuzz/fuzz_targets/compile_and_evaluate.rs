//! Parses, compiles (open schema), evaluates and asks `next_change_after` for arbitrary input: the first line
//! is the condition, the rest (if JSON) the profile. Nothing may panic.
#![no_main]

use cairn_condition::{compile_expression, parse, MapContext, Schema};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (source, profile) = text.split_once('\n').unwrap_or((text, "{}"));
    if let Ok(expr) = parse(source) {
        // Printing must give source that parses to the same tree.
        assert_eq!(parse(&expr.to_string()).ok(), Some(expr));
    }
    let Ok(condition) = compile_expression(source, &Schema::open()) else { return };
    let profile = serde_json::from_str(profile).unwrap_or(serde_json::Value::Null);
    let context = MapContext::new(1_781_524_800_000)
        .with_profile(profile.clone())
        .with_event(profile.clone())
        .with_journey(profile)
        .with_history([("X", 1_781_000_000_000), ("X", 1_781_500_000_000)]);
    let _ = condition.evaluate(&context).to_json();
    let _ = condition.next_change_after(&context);
});

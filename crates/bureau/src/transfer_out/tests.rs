//! Unit tests of `transfer_out` on an in-memory store.

#[test]
fn placeholder_until_the_step_tests_land() {
    assert_eq!(2 + 2, 4);
}

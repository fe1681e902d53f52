//! Every fixture event parses into the event kind its name says.

use crate::support::fixture;
use iadvize_token_broker::events::{Event, Step};

fn parse(name: &str) -> iadvize_token_broker::Result<Event> {
    Event::parse(&fixture(name))
}

#[test]
fn fixture_events_parse_into_their_kinds() {
    assert!(matches!(
        parse("scheduled-event.json").unwrap(),
        Event::Scheduled
    ));
    assert!(matches!(
        parse("operator-refresh.json").unwrap(),
        Event::Refresh {
            force: false,
            secret_ids: None
        }
    ));
    assert!(matches!(
        parse("operator-refresh-force.json").unwrap(),
        Event::Refresh { force: true, .. }
    ));
    assert!(matches!(
        parse("operator-status.json").unwrap(),
        Event::Status
    ));
    for (file, step) in [
        ("rotation-createSecret.json", Step::CreateSecret),
        ("rotation-setSecret.json", Step::SetSecret),
        ("rotation-testSecret.json", Step::TestSecret),
        ("rotation-finishSecret.json", Step::FinishSecret),
    ] {
        match parse(file).unwrap() {
            Event::Step(event) => {
                assert_eq!(event.step, step);
                assert!(event.rotation_token.is_some());
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // A queue record is only ever a rejection report: a body that is not one is counted and
    // ignored, never an error (SQS would retry it) and never another kind of event.
    match parse("invalid-sqs-event.json").unwrap() {
        Event::Queued { reports, ignored } => {
            assert!(reports.is_empty(), "{reports:?}");
            assert_eq!(ignored.len(), 1, "{ignored:?}");
        }
        other => panic!("invalid-sqs-event.json: {other:?}"),
    }
}

//! The controller → participant wire (transition messages as record JSON inside the
//! envelope) and the application-messages wire (requests, answers, bodies, types).

use proptest::prelude::*;
use strand::codec;
use strand::messaging::wire::{check_body, check_type, AppAnswer, AppRequest};
use strand::model::Record;
use strand::participant::ledger::TransitionMessage;
use strand::participant::wire::{ParticipantReply, ParticipantRequest};

use super::alloc::{peak_bytes, DECODE_BUDGET};
use super::mutate::{mutated, mutations};
use super::records::{read_every_way, record};

/// What a participant does with a request's bytes: decode, then read each message.
fn participant_reads(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (r, held) = peak_bytes(|| codec::decode::<ParticipantRequest>(bytes));
    prop_assert!(held <= DECODE_BUDGET.max(bytes.len() * 64), "{held} bytes held");
    if let Ok(ParticipantRequest::Transitions(texts)) = r {
        for t in texts {
            if let Ok(rec) = Record::from_json(&t) {
                let _ = TransitionMessage::parse(&rec);
            }
        }
    }
    let _ = codec::decode::<ParticipantReply>(bytes);
    Ok(())
}

/// What a recipient of application messages does with a request's bytes.
fn app_reads(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (r, held) = peak_bytes(|| codec::decode::<AppRequest>(bytes));
    prop_assert!(held <= DECODE_BUDGET.max(bytes.len() * 64), "{held} bytes held");
    if let Ok(AppRequest::Deliver { message, .. }) = r {
        let _ = check_body(&message.body);
        let _ = check_type(&message.msg_type);
        read_every_way(&message.to_record());
    }
    let _ = codec::decode::<AppAnswer>(bytes);
    Ok(())
}

fn transition_record() -> impl Strategy<Value = Record> {
    (record(), any::<u64>(), 0usize..6).prop_map(|(mut r, epoch, drop)| {
        for (k, v) in [
            ("MSG_ID", "m-1"),
            ("MSG_TYPE", "STATE_TRANSITION"),
            ("MSG_STATE", "new"),
            ("SRC_NAME", "controller"),
            ("TGT_NAME", "localhost_1"),
            ("TGT_SESSION_ID", "s1"),
            ("FROM_STATE", "OFFLINE"),
            ("TO_STATE", "SLAVE"),
            ("PARTITION_NAME", "TestDB_0"),
            ("RESOURCE_NAME", "TestDB"),
            ("STATE_MODEL_DEF", "MasterSlave"),
        ]
        .into_iter()
        .skip(drop)
        {
            r.simple_fields.entry(k.into()).or_insert_with(|| v.into());
        }
        r.set_simple("STRAND_EPOCH", epoch);
        r
    })
}

proptest! {
    #![proptest_config(super::config(512))]

    #[test]
    fn any_bytes_on_the_participant_and_messaging_services_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        participant_reads(&bytes)?;
        app_reads(&bytes)?;
        let mut framed = b"ST\x01".to_vec();
        framed.extend_from_slice(&bytes);
        participant_reads(&framed)?;
        app_reads(&framed)?;
    }

    #[test]
    fn transition_requests_round_trip_and_mutants_are_refused_or_read(
        records in proptest::collection::vec(transition_record(), 0..4),
        ms in mutations(),
    ) {
        let texts: Vec<String> = records.iter().map(Record::to_helix_json).collect();
        let req = ParticipantRequest::Transitions(texts.clone());
        let bytes = codec::encode(&req).unwrap();
        let ParticipantRequest::Transitions(back) = codec::decode::<ParticipantRequest>(&bytes).unwrap();
        prop_assert_eq!(&back, &texts);
        for (t, r) in back.iter().zip(&records) {
            let rec = Record::from_json(t).unwrap();
            prop_assert_eq!(&rec, r);
            let _ = TransitionMessage::parse(&rec);
        }
        participant_reads(&mutated(&bytes, &ms, 3))?;
        participant_reads(&mutated(&bytes, &ms, 0))?;
        let reply = ParticipantReply::Verdicts(vec!["run".into(), "duplicate".into()]);
        prop_assert_eq!(codec::decode::<ParticipantReply>(&codec::encode(&reply).unwrap()).unwrap(), reply);
    }

    #[test]
    fn any_text_as_a_message_body_or_type_is_taken_or_refused(text in ".{0,40}") {
        if let Err(e) = check_body(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = check_type(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        let answer = AppAnswer::Reply(text.clone());
        prop_assert_eq!(codec::decode::<AppAnswer>(&codec::encode(&answer).unwrap()).unwrap(), answer);
    }
}

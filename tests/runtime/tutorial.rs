//! Helix's tutorial, step for step: the external view after each participant joins, after
//! one leaves, and after it comes back; never two MASTERs on the way.

use strand::embedded::EmbeddedCluster;

use crate::support::{cluster, ideal_state, states, tutorial_ideal_state, wait_ev, Journal, WAIT};

const C: &str = "MYCLUSTER";
const I1: &str = "localhost_12913";
const I2: &str = "localhost_12914";
const I3: &str = "localhost_12915";

fn two_instance_view() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    states(&[
        ("myDB_0", I1, "SLAVE"),
        ("myDB_0", I2, "MASTER"),
        ("myDB_1", I1, "SLAVE"),
        ("myDB_1", I2, "MASTER"),
        ("myDB_2", I1, "MASTER"),
        ("myDB_2", I2, "SLAVE"),
        ("myDB_3", I1, "SLAVE"),
        ("myDB_3", I2, "MASTER"),
        ("myDB_4", I1, "MASTER"),
        ("myDB_4", I2, "SLAVE"),
        ("myDB_5", I1, "SLAVE"),
        ("myDB_5", I2, "MASTER"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_step_for_step() {
    let mut c = EmbeddedCluster::start(7).await.unwrap();
    cluster(&mut c, C, &[I1, I2, I3], &[]).await;
    let is = tutorial_ideal_state();
    ideal_state(&mut c, C, &is).await;
    let spectator = c.spectator(C).await.unwrap();
    let journal = Journal::default();

    // A controller alone writes an empty external view with the ideal state's fields.
    c.add_controller("controller-1", &[C]).await.unwrap();
    assert!(
        spectator
            .wait_until(WAIT, |t| t.external_view("myDB").is_some())
            .await
    );
    let ev = spectator.table().external_view("myDB").unwrap().clone();
    assert!(ev.record.map_fields.is_empty());
    assert_eq!(ev.record.simple("NUM_PARTITIONS"), Some("6"));
    assert_eq!(ev.record.simple("BUCKET_SIZE"), Some("0"));

    // One participant: it is MASTER of everything.
    journal.follow(c.add_participant(C, I1, None).await.unwrap());
    let all_on_one = states(
        &(0..6)
            .map(|p| {
                (
                    ["myDB_0", "myDB_1", "myDB_2", "myDB_3", "myDB_4", "myDB_5"][p],
                    I1,
                    "MASTER",
                )
            })
            .collect::<Vec<_>>(),
    );
    wait_ev(&spectator, "myDB", &all_on_one).await;

    // Two: MASTERs spread by the preference lists, a SLAVE of each on the other.
    journal.follow(c.add_participant(C, I2, None).await.unwrap());
    wait_ev(&spectator, "myDB", &two_instance_view()).await;

    // Three: the external view equals the ideal state.
    journal.follow(c.add_participant(C, I3, None).await.unwrap());
    wait_ev(&spectator, "myDB", &is.record.map_fields).await;

    // Gently terminate the third: back to the two-instance view at once.
    c.stop_participant(I3).await.unwrap();
    journal.ended(I3);
    wait_ev(&spectator, "myDB", &two_instance_view()).await;

    // Start it again: back to the ideal state.
    journal.follow(c.add_participant(C, I3, None).await.unwrap());
    wait_ev(&spectator, "myDB", &is.record.map_fields).await;

    journal.assert_never_two_masters();
    c.shutdown().await;
}

//! State assignment: the best possible state of every replica, down each preference list.

//! Selection: accept transitions only while every state's bound holds, counting pending ones.

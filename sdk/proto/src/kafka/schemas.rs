//! The layout of every served request body, as far as checking element
//! counts needs: per API, the first flexible version and the fields with
//! the versions that carry them.
//!
//! Read off the `kafka-protocol` crate's decoders (0.18, Kafka 4.1's
//! schemas). A field's range ends where the crate's does; `since` means
//! every version the crate knows from `from` on. Known tagged fields are
//! listed with `tagged`, since the crate decodes them from the body itself.
//! The round-trip property test in `tests.rs` generates bodies from these
//! schemas and requires the crate to decode and re-encode them byte for
//! byte, at every served version.

use super::ApiKey;

/// What one field of a request takes on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// A fixed-width value: ints, booleans (1), UUIDs (16).
    Fixed(usize),
    /// A (nullable) string: `i16` length, or compact.
    String,
    /// (Nullable) bytes or records: `i32` length, or compact.
    Bytes,
    /// An array of structs with these fields.
    Structs(&'static [Field]),
    /// An array of fixed-width values (e.g. `int32` partition indexes).
    Values(usize),
    /// An array of strings.
    Strings,
}

/// A field: its name (for errors), the versions that carry it, its shape,
/// and for a known tagged field its tag.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) from: i16,
    pub(super) until: i16,
    pub(super) shape: Shape,
    pub(super) tag: Option<u32>,
}

impl Field {
    /// Whether the field is in `version`'s layout.
    pub(super) fn in_version(&self, version: i16) -> bool {
        (self.from..=self.until).contains(&version)
    }
}

/// A request body's layout and the first version that is flexible.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schema {
    pub(super) flexible_from: i16,
    pub(super) fields: &'static [Field],
}

/// A field present in versions `from..=until`.
const fn field(name: &'static str, from: i16, until: i16, shape: Shape) -> Field {
    Field {
        name,
        from,
        until,
        shape,
        tag: None,
    }
}

/// A field present in every version from `from` on.
const fn since(name: &'static str, from: i16, shape: Shape) -> Field {
    field(name, from, i16::MAX, shape)
}

/// A known tagged field, from version `from` on.
const fn tagged(tag: u32, from: i16, shape: Shape) -> Field {
    Field {
        name: "tagged field",
        from,
        until: i16::MAX,
        shape,
        tag: Some(tag),
    }
}

use Shape::{Bytes, Fixed, Strings, Structs, Values};

/// A consumer's subscription in the classic group protocol's member
/// metadata (client-written; read by the broker to describe groups).
pub(super) const CONSUMER_PROTOCOL_SUBSCRIPTION: Schema = Schema {
    flexible_from: i16::MAX,
    fields: &[
        since("topics", 0, Strings),
        since("user_data", 0, Bytes),
        since(
            "owned_partitions",
            1,
            Structs(&[
                since("topic", 1, Shape::String),
                since("partitions", 1, Values(4)),
            ]),
        ),
        since("generation_id", 2, Fixed(4)),
        since("rack_id", 3, Shape::String),
    ],
};

/// A member's assignment in the classic group protocol (written by the
/// group's leader, a client).
pub(super) const CONSUMER_PROTOCOL_ASSIGNMENT: Schema = Schema {
    flexible_from: i16::MAX,
    fields: &[
        since(
            "assigned_partitions",
            0,
            Structs(&[
                since("topic", 0, Shape::String),
                since("partitions", 0, Values(4)),
            ]),
        ),
        since("user_data", 0, Bytes),
    ],
};

/// The schema of `api`'s request body, if it is served.
pub(super) fn schema(api: ApiKey) -> Option<Schema> {
    Some(match api {
        ApiKey::ApiVersions => API_VERSIONS,
        ApiKey::Metadata => METADATA,
        ApiKey::Produce => PRODUCE,
        ApiKey::Fetch => FETCH,
        ApiKey::ListOffsets => LIST_OFFSETS,
        ApiKey::FindCoordinator => FIND_COORDINATOR,
        ApiKey::OffsetCommit => OFFSET_COMMIT,
        ApiKey::OffsetFetch => OFFSET_FETCH,
        ApiKey::CreateTopics => CREATE_TOPICS,
        ApiKey::DeleteTopics => DELETE_TOPICS,
        ApiKey::CreatePartitions => CREATE_PARTITIONS,
        ApiKey::DescribeConfigs => DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => ALTER_CONFIGS,
        ApiKey::IncrementalAlterConfigs => INCREMENTAL_ALTER_CONFIGS,
        ApiKey::ListGroups => LIST_GROUPS,
        ApiKey::DescribeGroups => DESCRIBE_GROUPS,
        ApiKey::DeleteGroups => DELETE_GROUPS,
        ApiKey::DeleteRecords => DELETE_RECORDS,
        ApiKey::JoinGroup => JOIN_GROUP,
        ApiKey::SyncGroup => SYNC_GROUP,
        ApiKey::Heartbeat => HEARTBEAT,
        ApiKey::LeaveGroup => LEAVE_GROUP,
        ApiKey::InitProducerId => INIT_PRODUCER_ID,
        ApiKey::ConsumerGroupHeartbeat => CONSUMER_GROUP_HEARTBEAT,
        _ => return None,
    })
}

const API_VERSIONS: Schema = Schema {
    flexible_from: 3,
    fields: &[
        since("client_software_name", 3, Shape::String),
        since("client_software_version", 3, Shape::String),
    ],
};

const METADATA: Schema = Schema {
    flexible_from: 9,
    fields: &[
        since(
            "topics",
            0,
            Structs(&[
                since("topic_id", 10, Fixed(16)),
                since("name", 0, Shape::String),
            ]),
        ),
        since("allow_auto_topic_creation", 4, Fixed(1)),
        field("include_cluster_authorized_operations", 8, 10, Fixed(1)),
        since("include_topic_authorized_operations", 8, Fixed(1)),
    ],
};

const PRODUCE: Schema = Schema {
    flexible_from: 9,
    fields: &[
        since("transactional_id", 3, Shape::String),
        since("acks", 3, Fixed(2)),
        since("timeout_ms", 3, Fixed(4)),
        since(
            "topic_data",
            3,
            Structs(&[
                field("name", 3, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since(
                    "partition_data",
                    3,
                    Structs(&[since("index", 3, Fixed(4)), since("records", 3, Bytes)]),
                ),
            ]),
        ),
    ],
};

const FETCH: Schema = Schema {
    flexible_from: 12,
    fields: &[
        field("replica_id", 4, 14, Fixed(4)),
        since("max_wait_ms", 4, Fixed(4)),
        since("min_bytes", 4, Fixed(4)),
        since("max_bytes", 4, Fixed(4)),
        since("isolation_level", 4, Fixed(1)),
        since("session_id", 7, Fixed(4)),
        since("session_epoch", 7, Fixed(4)),
        since(
            "topics",
            4,
            Structs(&[
                field("topic", 4, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since(
                    "partitions",
                    4,
                    Structs(&[
                        since("partition", 4, Fixed(4)),
                        since("current_leader_epoch", 9, Fixed(4)),
                        since("fetch_offset", 4, Fixed(8)),
                        since("last_fetched_epoch", 12, Fixed(4)),
                        since("log_start_offset", 5, Fixed(8)),
                        since("partition_max_bytes", 4, Fixed(4)),
                    ]),
                ),
            ]),
        ),
        since(
            "forgotten_topics_data",
            7,
            Structs(&[
                field("topic", 7, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since("partitions", 7, Values(4)),
            ]),
        ),
        since("rack_id", 11, Shape::String),
        tagged(0, 4, Shape::String),
    ],
};

const LIST_OFFSETS: Schema = Schema {
    flexible_from: 6,
    fields: &[
        since("replica_id", 1, Fixed(4)),
        since("isolation_level", 2, Fixed(1)),
        since(
            "topics",
            1,
            Structs(&[
                since("name", 1, Shape::String),
                since(
                    "partitions",
                    1,
                    Structs(&[
                        since("partition_index", 1, Fixed(4)),
                        since("current_leader_epoch", 4, Fixed(4)),
                        since("timestamp", 1, Fixed(8)),
                    ]),
                ),
            ]),
        ),
        since("timeout_ms", 10, Fixed(4)),
    ],
};

const FIND_COORDINATOR: Schema = Schema {
    flexible_from: 3,
    fields: &[
        field("key", 0, 3, Shape::String),
        since("key_type", 1, Fixed(1)),
        since("coordinator_keys", 4, Strings),
    ],
};

const OFFSET_COMMIT: Schema = Schema {
    flexible_from: 8,
    fields: &[
        since("group_id", 2, Shape::String),
        since("generation_id_or_member_epoch", 2, Fixed(4)),
        since("member_id", 2, Shape::String),
        since("group_instance_id", 7, Shape::String),
        field("retention_time_ms", 2, 4, Fixed(8)),
        since(
            "topics",
            2,
            Structs(&[
                since("name", 2, Shape::String),
                since(
                    "partitions",
                    2,
                    Structs(&[
                        since("partition_index", 2, Fixed(4)),
                        since("committed_offset", 2, Fixed(8)),
                        since("committed_leader_epoch", 6, Fixed(4)),
                        since("committed_metadata", 2, Shape::String),
                    ]),
                ),
            ]),
        ),
    ],
};

const OFFSET_FETCH: Schema = Schema {
    flexible_from: 6,
    fields: &[
        field("group_id", 1, 7, Shape::String),
        field(
            "topics",
            1,
            7,
            Structs(&[
                field("name", 1, 7, Shape::String),
                field("partition_indexes", 1, 7, Values(4)),
            ]),
        ),
        since(
            "groups",
            8,
            Structs(&[
                since("group_id", 8, Shape::String),
                since("member_id", 9, Shape::String),
                since("member_epoch", 9, Fixed(4)),
                since(
                    "topics",
                    8,
                    Structs(&[
                        since("name", 8, Shape::String),
                        since("partition_indexes", 8, Values(4)),
                    ]),
                ),
            ]),
        ),
        since("require_stable", 7, Fixed(1)),
    ],
};

const CREATE_TOPICS: Schema = Schema {
    flexible_from: 5,
    fields: &[
        since(
            "topics",
            2,
            Structs(&[
                since("name", 2, Shape::String),
                since("num_partitions", 2, Fixed(4)),
                since("replication_factor", 2, Fixed(2)),
                since(
                    "assignments",
                    2,
                    Structs(&[
                        since("partition_index", 2, Fixed(4)),
                        since("broker_ids", 2, Values(4)),
                    ]),
                ),
                since(
                    "configs",
                    2,
                    Structs(&[
                        since("name", 2, Shape::String),
                        since("value", 2, Shape::String),
                    ]),
                ),
            ]),
        ),
        since("timeout_ms", 2, Fixed(4)),
        since("validate_only", 2, Fixed(1)),
    ],
};

const DELETE_TOPICS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        since(
            "topics",
            6,
            Structs(&[
                since("name", 6, Shape::String),
                since("topic_id", 6, Fixed(16)),
            ]),
        ),
        field("topic_names", 1, 5, Strings),
        since("timeout_ms", 1, Fixed(4)),
    ],
};

const DELETE_RECORDS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        since(
            "topics",
            0,
            Structs(&[
                since("name", 0, Shape::String),
                since(
                    "partitions",
                    0,
                    Structs(&[
                        since("partition_index", 0, Fixed(4)),
                        since("offset", 0, Fixed(8)),
                    ]),
                ),
            ]),
        ),
        since("timeout_ms", 0, Fixed(4)),
    ],
};

const CREATE_PARTITIONS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        since(
            "topics",
            0,
            Structs(&[
                since("name", 0, Shape::String),
                since("count", 0, Fixed(4)),
                since(
                    "assignments",
                    0,
                    Structs(&[since("broker_ids", 0, Values(4))]),
                ),
            ]),
        ),
        since("timeout_ms", 0, Fixed(4)),
        since("validate_only", 0, Fixed(1)),
    ],
};

const DESCRIBE_CONFIGS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        since(
            "resources",
            1,
            Structs(&[
                since("resource_type", 1, Fixed(1)),
                since("resource_name", 1, Shape::String),
                since("configuration_keys", 1, Strings),
            ]),
        ),
        since("include_synonyms", 1, Fixed(1)),
        since("include_documentation", 3, Fixed(1)),
    ],
};

const ALTER_CONFIGS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        since(
            "resources",
            0,
            Structs(&[
                since("resource_type", 0, Fixed(1)),
                since("resource_name", 0, Shape::String),
                since(
                    "configs",
                    0,
                    Structs(&[
                        since("name", 0, Shape::String),
                        since("value", 0, Shape::String),
                    ]),
                ),
            ]),
        ),
        since("validate_only", 0, Fixed(1)),
    ],
};

const INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    flexible_from: 1,
    fields: &[
        since(
            "resources",
            0,
            Structs(&[
                since("resource_type", 0, Fixed(1)),
                since("resource_name", 0, Shape::String),
                since(
                    "configs",
                    0,
                    Structs(&[
                        since("name", 0, Shape::String),
                        since("config_operation", 0, Fixed(1)),
                        since("value", 0, Shape::String),
                    ]),
                ),
            ]),
        ),
        since("validate_only", 0, Fixed(1)),
    ],
};

const LIST_GROUPS: Schema = Schema {
    flexible_from: 3,
    fields: &[
        since("states_filter", 4, Strings),
        since("types_filter", 5, Strings),
    ],
};

const DESCRIBE_GROUPS: Schema = Schema {
    flexible_from: 5,
    fields: &[
        since("groups", 0, Strings),
        since("include_authorized_operations", 3, Fixed(1)),
    ],
};

const DELETE_GROUPS: Schema = Schema {
    flexible_from: 2,
    fields: &[since("groups_names", 0, Strings)],
};

const JOIN_GROUP: Schema = Schema {
    flexible_from: 6,
    fields: &[
        since("group_id", 0, Shape::String),
        since("session_timeout_ms", 0, Fixed(4)),
        since("rebalance_timeout_ms", 1, Fixed(4)),
        since("member_id", 0, Shape::String),
        since("group_instance_id", 5, Shape::String),
        since("protocol_type", 0, Shape::String),
        since(
            "protocols",
            0,
            Structs(&[since("name", 0, Shape::String), since("metadata", 0, Bytes)]),
        ),
        since("reason", 8, Shape::String),
    ],
};

const SYNC_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        since("group_id", 0, Shape::String),
        since("generation_id", 0, Fixed(4)),
        since("member_id", 0, Shape::String),
        since("group_instance_id", 3, Shape::String),
        since("protocol_type", 5, Shape::String),
        since("protocol_name", 5, Shape::String),
        since(
            "assignments",
            0,
            Structs(&[
                since("member_id", 0, Shape::String),
                since("assignment", 0, Bytes),
            ]),
        ),
    ],
};

const HEARTBEAT: Schema = Schema {
    flexible_from: 4,
    fields: &[
        since("group_id", 0, Shape::String),
        since("generation_id", 0, Fixed(4)),
        since("member_id", 0, Shape::String),
        since("group_instance_id", 3, Shape::String),
    ],
};

const LEAVE_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        since("group_id", 0, Shape::String),
        field("member_id", 0, 2, Shape::String),
        since(
            "members",
            3,
            Structs(&[
                since("member_id", 3, Shape::String),
                since("group_instance_id", 3, Shape::String),
                since("reason", 5, Shape::String),
            ]),
        ),
    ],
};

const INIT_PRODUCER_ID: Schema = Schema {
    flexible_from: 2,
    fields: &[
        since("transactional_id", 0, Shape::String),
        since("transaction_timeout_ms", 0, Fixed(4)),
        since("producer_id", 3, Fixed(8)),
        since("producer_epoch", 3, Fixed(2)),
    ],
};

const CONSUMER_GROUP_HEARTBEAT: Schema = Schema {
    flexible_from: 0,
    fields: &[
        since("group_id", 0, Shape::String),
        since("member_id", 0, Shape::String),
        since("member_epoch", 0, Fixed(4)),
        since("instance_id", 0, Shape::String),
        since("rack_id", 0, Shape::String),
        since("rebalance_timeout_ms", 0, Fixed(4)),
        since("subscribed_topic_names", 0, Strings),
        since("subscribed_topic_regex", 1, Shape::String),
        since("server_assignor", 0, Shape::String),
        since(
            "topic_partitions",
            0,
            Structs(&[
                since("topic_id", 0, Fixed(16)),
                since("partitions", 0, Values(4)),
            ]),
        ),
    ],
};

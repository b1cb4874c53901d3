/**
 * Why a sync message, or one record of it, was not taken: one reason per event, counted. The
 * kernel's receiver (ip_vs_process_message, ip_vs_proc_sync_conn) has two kinds of record errors:
 * negative ones drop the rest of the message (the framing can no longer be trusted), positive ones
 * skip just that record. The reasons keep that split: `MSG_*` and `FRAME_*` end the message (records
 * before the error stay accepted, as the kernel keeps them), `REC_*` skip one record.
 * Append-only: the numbers are counter indexes.
 */

export const enum SyncDrop {
  /** Shorter than the 4-byte v0 header ("message header too short"). */
  MSG_TOO_SHORT = 0,
  /** Longer than the receive buffer (sync_maxlen): the kernel would read it truncated. */
  MSG_OVERSIZED,
  /** Datagram length differs from the header's size field ("bogus message size"). */
  MSG_SIZE_MISMATCH,
  /** Another sync id while ours is not 0 ("Ignoring syncid"). */
  MSG_OTHER_SYNCID,
  /** First byte 0 (not v0) but not a v1 header either: version != 1 or spare != 0. */
  MSG_UNKNOWN_VERSION,
  /** nr_conns promises a record the remaining bytes cannot hold ("Dropping buffer, too small"). */
  FRAME_TRUNCATED,
  /** A record's size runs past the message ("msg > buffer"). */
  FRAME_OVERRUN,
  /** A record's version nibble is not 0 ("Unknown version"). */
  FRAME_RECORD_VERSION,
  /** Record type other than 0 (IPv4) or 1 (IPv6) (kernel: -10; it also reads 3, 5... as IPv6). */
  FRAME_BAD_TYPE,
  /** Record size smaller than its fixed part, zero included (kernel: -20). */
  FRAME_RECORD_SHORT,
  /** An option header cut by the record's end (kernel: -30). */
  FRAME_OPTION_TRUNCATED,
  /** An option of length 0 or running past the record (kernel: -40). */
  FRAME_OPTION_LENGTH,
  /** Sequence option not 24 bytes, or twice (kernel: -50). */
  FRAME_SEQ_OPTION,
  /** PE data option twice (kernel: -60). */
  FRAME_PE_DATA,
  /** PE name option longer than 16 bytes, or twice (kernel: -70). */
  FRAME_PE_NAME,
  /** An option the receiver does not know without the "may skip" bit (kernel: 20). */
  REC_UNKNOWN_OPTION,
  /** Protocol IPVS does not handle (kernel: 30). */
  REC_PROTOCOL,
  /** State out of range for the protocol (kernel: 40). */
  REC_STATE,
  /** Template state out of range (the kernel only logs it; xvs skips it). */
  REC_TEMPLATE_STATE,
  /** PE data without a PE name (kernel: 50). */
  REC_PE_WITHOUT_NAME,
  /** Reserved byte of a v0 record not 0 (the kernel ignores it; xvs skips the record). */
  REC_V0_RESERVED,
  /** The caller's service lookup knows no service for the record's virtual address. */
  REC_NO_SERVICE,
  /** Bytes after the last record nr_conns announced (counted; the records are kept, as the kernel does). */
  MSG_TRAILING_BYTES,
  /** The record's real server is not in the local service (the kernel keeps such a connection unbound; xvs skips it). */
  REC_NO_DEST,
  /** PE data of a persistence engine xvs does not have, every one (kernel: 50, "no %s engine found/loaded"; sync/pe.ts). */
  REC_UNKNOWN_PE,
}

/** Counter names, indexed by SyncDrop (append-only, like the enum). */
export const SYNC_DROP_NAMES: readonly string[] = [
  "msg_too_short",
  "msg_oversized",
  "msg_size_mismatch",
  "msg_other_syncid",
  "msg_unknown_version",
  "frame_truncated",
  "frame_overrun",
  "frame_record_version",
  "frame_bad_type",
  "frame_record_short",
  "frame_option_truncated",
  "frame_option_length",
  "frame_seq_option",
  "frame_pe_data",
  "frame_pe_name",
  "rec_unknown_option",
  "rec_protocol",
  "rec_state",
  "rec_template_state",
  "rec_pe_without_name",
  "rec_v0_reserved",
  "rec_no_service",
  "msg_trailing_bytes",
  "rec_no_dest",
  "rec_unknown_pe",
];

/** Number of drop reasons. */
export const SYNC_DROP_COUNT = SYNC_DROP_NAMES.length;

/** True when the reason ends the message (the records after it are not read). */
export function endsMessage(r: SyncDrop): boolean {
  return r < SyncDrop.REC_UNKNOWN_OPTION;
}

/** Receive-side counters: messages and records seen and accepted, and one counter per drop reason. */
export class SyncRxCounters {
  messages = 0;
  /** Messages from which at least one record was accepted. */
  messagesAccepted = 0;
  recordsAccepted = 0;
  /** Records announced by nr_conns that were not read because the message ended early. */
  recordsUnread = 0;
  readonly drops = new Float64Array(SYNC_DROP_COUNT);

  /** Count one drop. */
  drop(r: SyncDrop): void {
    this.drops[r]++;
  }

  /** Name -> count of the non-zero drop counters. */
  dropTable(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < SYNC_DROP_COUNT; i++) if (this.drops[i] !== 0) out[SYNC_DROP_NAMES[i]] = this.drops[i];
    return out;
  }
}

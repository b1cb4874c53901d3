/** The bench's estimate of the time left (src/tools/bench/progress.ts). */
import { describe, expect, test } from "bun:test";
import { formatDuration, leftText, ProgressEstimator } from "../../../src/tools/bench/progress.ts";

describe("time left", () => {
  test("unknown before anything finished, unless every step left has a guess", () => {
    expect(new ProgressEstimator([{ key: "a" }, { key: "b", guess: 5 }]).secondsLeft(0)).toBeNull();
    expect(
      new ProgressEstimator([
        { key: "a", guess: 3 },
        { key: "b", guess: 5 },
      ]).secondsLeft(0),
    ).toBe(8);
    expect(leftText(null)).toBe("time left not known yet");
  });

  test("a step expects what finished steps of its key took, else its guess, else the mean of all finished", () => {
    // 2 rounds of gen, xvs, nft (xvs with flows in round 1 only), then micro with a guess
    const e = new ProgressEstimator([
      { key: "gen" },
      { key: "xvs+flows" },
      { key: "nft" },
      { key: "gen" },
      { key: "xvs" },
      { key: "nft" },
      { key: "micro", guess: 7 },
    ]);
    e.finish(0, 10);
    // the rest: xvs+flows, nft, xvs (no data: mean 10 each), gen 10, nft, micro 7
    expect(e.secondsLeft(1)).toBe(10 + 10 + 10 + 10 + 10 + 7);
    e.finish(1, 40);
    e.finish(2, 20);
    // gen 10, xvs (unseen key: mean of finished 70/3), nft 20, micro 7
    expect(e.secondsLeft(3)).toBeCloseTo(10 + 70 / 3 + 20 + 7, 9);
    e.finish(3, 14);
    e.finish(4, 30);
    e.finish(5, 22);
    expect(e.secondsLeft(6)).toBe(7);
    e.finish(6, 9);
    expect(e.secondsLeft(6)).toBe(0);
    // a key's steps are averaged: nft took 20 and 22
    const f = new ProgressEstimator([{ key: "nft" }, { key: "nft" }, { key: "nft" }]);
    f.finish(0, 20);
    f.finish(1, 22);
    expect(f.secondsLeft(2)).toBe(21);
  });

  test("steps timed by start/stop: starting one ends the one running", () => {
    const e = new ProgressEstimator([{ key: "a" }, { key: "a" }, { key: "a" }, { key: "a" }]);
    e.start(0, 1_000);
    expect(e.secondsLeft(0)).toBeNull();
    e.start(1, 4_000); // step 0 took 3 s
    expect(e.secondsLeft(1)).toBe(9);
    e.start(2, 9_000); // step 1 took 5 s: mean 4
    expect(e.secondsLeft(2)).toBe(8);
    e.stop(13_000);
    e.stop(20_000); // nothing running: no effect
    expect(e.secondsLeft(3)).toBe(4);
  });

  test("durations read as a person writes them", () => {
    expect([0, 9.6, 59, 60, 190, 3599, 3600, 7384].map(formatDuration)).toEqual(["0s", "10s", "59s", "1m00s", "3m10s", "59m59s", "1h00m", "2h03m"]);
    expect(leftText(190)).toBe("3m10s left (est.)");
  });
});

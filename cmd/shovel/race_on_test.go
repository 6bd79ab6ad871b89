//go:build race

package main

// raceEnabled: the race detector's shadow memory multiplies a process's
// RSS, so the RSS bounds of the memory tests hold only without it (make
// test runs them a second time without -race); the budget gauges hold
// either way.
const raceEnabled = true

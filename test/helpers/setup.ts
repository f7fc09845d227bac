// vitest setup (vitest.config.ts `setupFiles`): the suites load fixtures over stubbed fetches and local servers;
// they must not fill (or hit) the user's download cache, so the default directory cache is off here. The cache
// itself is tested in test/hub.test.ts, which turns it on with its own directories.
import { env } from "../../ts/src/hub.js";

env.useFSCache = false;

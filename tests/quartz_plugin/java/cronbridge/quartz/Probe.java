package cronbridge.quartz;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;

/** Test probe for the plugin's pure parts. Reads tab-separated requests on stdin, one per
 * line, answers one line each: "owner DIR JOB EPOCH" -> legacy|celery (through
 * AuthorityCache, as the veto asks), "sanitize RAW" -> the job id, "json TEXT" -> the JSON
 * string literal. */
public class Probe {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        AuthorityCache cache = null;
        String cacheDir = null;
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split("\t", -1);
            if (f[0].equals("owner")) {
                if (!f[1].equals(cacheDir)) {
                    cacheDir = f[1];
                    cache = new AuthorityCache(Paths.get(f[1]), m -> System.err.println(m));
                }
                out.append(cache.ownerAt(f[2], Long.parseLong(f[3])));
            } else if (f[0].equals("sanitize")) {
                out.append(BridgePlugin.sanitize(f[1]));
            } else if (f[0].equals("json")) {
                StringBuilder s = new StringBuilder();
                Json.quote(s, f[1]);
                out.append(s);
            }
            out.append('\n');
        }
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
    }
}

-- Test-only catalog queries of tests/test_schema.py, as named blocks ("-- name: <name>").

-- name: describe
-- A description of every object of a database's schemas, one row per object:
-- (kind, name, detail). tests/test_schema.py compares two databases with it.
-- Independent of who built the database: the current user is shown as <owner>, and
-- ACLs are compared as what they grant (a default ACL and the same ACL written out
-- are the same). Positions, oids and attnums are left out: they depend on history.
WITH roles AS (
    SELECT oid, CASE WHEN rolname = current_user THEN '<owner>' ELSE rolname END AS name
      FROM pg_roles
    UNION ALL
    SELECT 0, 'PUBLIC'
),
namespaces AS (
    SELECT oid, nspname FROM pg_namespace
     WHERE nspname NOT IN ('pg_catalog', 'information_schema')
       AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
),
objects AS (
    SELECT 'schema' AS kind, n.nspname::text AS name,
           'owner ' || o.name
             || ' acl ' || COALESCE(acl.text, '-') AS detail
      FROM pg_namespace n JOIN namespaces USING (oid)
      JOIN roles o ON o.oid = n.nspowner
      LEFT JOIN LATERAL (
          SELECT string_agg(g.name || '=' || e.privilege_type
                            || CASE WHEN e.is_grantable THEN '*' ELSE '' END
                            || '/' || gr.name, ',' ORDER BY g.name, e.privilege_type, gr.name)
              AS text
            FROM aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) e
            JOIN roles g ON g.oid = e.grantee JOIN roles gr ON gr.oid = e.grantor
      ) acl ON true

    UNION ALL
    SELECT 'relation', c.oid::regclass::text,
           'kind ' || c.relkind::text || ' owner ' || o.name
             || ' persistence ' || c.relpersistence::text
             || ' rls ' || c.relrowsecurity || ' forced ' || c.relforcerowsecurity
             || ' options ' || COALESCE(array_to_string(c.reloptions, ',', ''), '-')
             || ' acl ' || COALESCE(acl.text, '-')
      FROM pg_class c JOIN namespaces n ON n.oid = c.relnamespace
      JOIN roles o ON o.oid = c.relowner
      LEFT JOIN LATERAL (
          SELECT string_agg(g.name || '=' || e.privilege_type
                            || CASE WHEN e.is_grantable THEN '*' ELSE '' END
                            || '/' || gr.name, ',' ORDER BY g.name, e.privilege_type, gr.name)
              AS text
            FROM aclexplode(COALESCE(c.relacl, acldefault(
                     CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) e
            JOIN roles g ON g.oid = e.grantee JOIN roles gr ON gr.oid = e.grantor
      ) acl ON true
     WHERE c.relkind NOT IN ('i', 'I')  -- indexes: below

    UNION ALL
    SELECT 'column', c.oid::regclass::text || ' #'
               || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
               || ' ' || a.attname,
           format_type(a.atttypid, a.atttypmod)
             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
             || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
             || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
             || CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END
             || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                     THEN ' collate ' || a.attcollation::regcollation ELSE '' END
             || COALESCE(' acl ' || acl.text, '')
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      JOIN namespaces n ON n.oid = c.relnamespace
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN LATERAL (
          SELECT string_agg(g.name || '=' || e.privilege_type
                            || CASE WHEN e.is_grantable THEN '*' ELSE '' END
                            || '/' || gr.name, ',' ORDER BY g.name, e.privilege_type, gr.name)
              AS text
            FROM aclexplode(a.attacl) e
            JOIN roles g ON g.oid = e.grantee JOIN roles gr ON gr.oid = e.grantor
      ) acl ON true
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind NOT IN ('i', 'I', 'S')

    UNION ALL
    SELECT 'constraint', COALESCE(con.conrelid::regclass::text, con.contypid::regtype::text)
               || ' ' || con.conname,
           pg_get_constraintdef(con.oid)
             || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END
      FROM pg_constraint con JOIN namespaces n ON n.oid = con.connamespace

    UNION ALL
    SELECT 'index', i.indexrelid::regclass::text,
           pg_get_indexdef(i.indexrelid)
             || CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      JOIN namespaces n ON n.oid = c.relnamespace

    UNION ALL
    SELECT 'sequence', s.seqrelid::regclass::text,
           format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
             || ' increment ' || s.seqincrement || ' min ' || s.seqmin
             || ' max ' || s.seqmax || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle
             || COALESCE(' owned by ' || (
                   SELECT string_agg(dep.refobjid::regclass::text || '.' || att.attname, ',')
                     FROM pg_depend dep
                     JOIN pg_attribute att
                       ON att.attrelid = dep.refobjid AND att.attnum = dep.refobjsubid
                    WHERE dep.classid = 'pg_class'::regclass AND dep.objid = s.seqrelid
                      AND dep.refclassid = 'pg_class'::regclass
                      AND dep.deptype IN ('a', 'i')), '')
      FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
      JOIN namespaces n ON n.oid = c.relnamespace

    UNION ALL
    SELECT 'view', c.oid::regclass::text, pg_get_viewdef(c.oid)
      FROM pg_class c JOIN namespaces n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('v', 'm')

    UNION ALL
    SELECT 'function', p.oid::regprocedure::text,
           'kind ' || p.prokind::text || ' owner ' || o.name || ' acl ' || COALESCE(acl.text, '-')
             || E'\n' || CASE WHEN p.prokind = 'a' THEN '(aggregate)'
                              ELSE pg_get_functiondef(p.oid) END
      FROM pg_proc p JOIN namespaces n ON n.oid = p.pronamespace
      JOIN roles o ON o.oid = p.proowner
      LEFT JOIN LATERAL (
          SELECT string_agg(g.name || '=' || e.privilege_type
                            || CASE WHEN e.is_grantable THEN '*' ELSE '' END
                            || '/' || gr.name, ',' ORDER BY g.name, e.privilege_type, gr.name)
              AS text
            FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) e
            JOIN roles g ON g.oid = e.grantee JOIN roles gr ON gr.oid = e.grantor
      ) acl ON true

    UNION ALL
    SELECT 'trigger', tg.tgrelid::regclass::text || ' ' || tg.tgname,
           pg_get_triggerdef(tg.oid) || ' enabled ' || tg.tgenabled::text
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
      JOIN namespaces n ON n.oid = c.relnamespace
     WHERE NOT tg.tgisinternal

    UNION ALL
    SELECT 'rule', r.schemaname || '.' || r.tablename || ' ' || r.rulename, r.definition
      FROM pg_rules r JOIN namespaces n ON n.nspname = r.schemaname

    UNION ALL
    SELECT 'policy', pol.polrelid::regclass::text || ' ' || pol.polname,
           CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END
             || ' for ' || pol.polcmd::text
             || ' to ' || (SELECT string_agg(r.name, ',' ORDER BY r.name)
                             FROM unnest(pol.polroles) AS pr(oid) JOIN roles r USING (oid))
             || ' using ' || COALESCE(pg_get_expr(pol.polqual, pol.polrelid), '-')
             || ' check ' || COALESCE(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
      FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
      JOIN namespaces n ON n.oid = c.relnamespace

    UNION ALL
    SELECT 'type', t.oid::regtype::text,
           'kind ' || t.typtype::text || ' owner ' || o.name || ' acl ' || COALESCE(acl.text, '-')
             || CASE t.typtype::text
                    WHEN 'e' THEN ' labels ' || (SELECT string_agg(quote_literal(e.enumlabel),
                                                                   ',' ORDER BY e.enumsortorder)
                                                   FROM pg_enum e WHERE e.enumtypid = t.oid)
                    WHEN 'd' THEN ' over ' || format_type(t.typbasetype, t.typtypmod)
                                  || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                                  || COALESCE(' default ' || t.typdefault, '')
                    ELSE ''
                END
      FROM pg_type t JOIN namespaces n ON n.oid = t.typnamespace
      JOIN roles o ON o.oid = t.typowner
      LEFT JOIN LATERAL (
          SELECT string_agg(g.name || '=' || e.privilege_type
                            || CASE WHEN e.is_grantable THEN '*' ELSE '' END
                            || '/' || gr.name, ',' ORDER BY g.name, e.privilege_type, gr.name)
              AS text
            FROM aclexplode(COALESCE(t.typacl, acldefault('T', t.typowner))) e
            JOIN roles g ON g.oid = e.grantee JOIN roles gr ON gr.oid = e.grantor
      ) acl ON true
     -- a table's row type and array types come with their table or element type
     WHERE t.typtype IN ('e', 'd', 'r', 'm')
        OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')

    UNION ALL
    SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
      FROM pg_description d
      CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) i
      JOIN namespaces n ON n.nspname = i.schema

    UNION ALL
    SELECT 'extension', x.extname, 'version ' || x.extversion || ' schema ' || x.extnamespace::regnamespace
      FROM pg_extension x WHERE x.extname <> 'plpgsql'

    UNION ALL
    SELECT 'event trigger', e.evtname,
           e.evtevent || ' ' || e.evtfoid::regproc || ' enabled ' || e.evtenabled::text
      FROM pg_event_trigger e
)
SELECT kind, name, detail FROM objects ORDER BY kind, name, detail;

-- name: functions
-- The schema's functions by identity, with their definition: what one migration step
-- added, dropped or changed.
SELECT p.oid::regprocedure::text AS identity, p.proname::text AS name,
       p.prorettype = 'trigger'::regtype AS is_trigger,
       CASE WHEN p.prokind = 'a' THEN '(aggregate)' ELSE pg_get_functiondef(p.oid) END AS def
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
 ORDER BY 1;

-- name: app_functions
-- The end-user API: functions applications call as members of queueing_app (0005).
SELECT DISTINCT p.proname::text AS name
  FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) e
  JOIN pg_roles r ON r.oid = e.grantee
 WHERE r.rolname = 'queueing_app'
 ORDER BY 1;

# A stand-in for the parts of nixpkgs' `lib` that nix/ uses, for checking the NixOS module on a
# machine without nixpkgs (Nix 2.8 has no module system built in).
#
# The module system here follows lib/modules.nix in the points that decide what a module evaluates
# to: options are declared once and defined by any number of modules; `mkIf`, `mkMerge`,
# `mkOverride` (mkDefault, mkForce, option defaults) and `mkOrder` are pushed down and discharged
# the same way; the highest-priority definitions win; each type checks and merges its definitions
# (lists concatenate, attribute sets merge per key, submodules are evaluated as modules, scalars
# must agree); defining an option that no module declares is an error, as is using an option
# that has no value. Left out: `_module`, freeform types, `disabledModules`, option renames,
# documentation rendering, de-duplication of imports.
let
  inherit (builtins)
    all any attrNames concatMap concatStringsSep elem filter foldl' functionArgs genList head
    intersectAttrs isAttrs isBool isFloat isFunction isInt isList isPath isString length
    listToAttrs mapAttrs match removeAttrs replaceStrings sort substring tail toJSON typeOf;

  lib = rec {
    # ---- lists, attribute sets, strings -------------------------------------------------------
    # Builtins that nixpkgs' lib re-exports under the same names.
    inherit all any attrNames concatMap concatStringsSep elem filter foldl' head isAttrs isBool
      isFloat isFunction isInt isList isString length mapAttrs tail;
    attrValues = builtins.attrValues;
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalAttrs = cond: set: if cond then set else { };
    optionalString = cond: s: if cond then s else "";
    toList = x: if isList x then x else [ x ];
    last = xs: builtins.elemAt xs (length xs - 1);
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    concatLists = builtins.concatLists;
    imap0 = f: xs: genList (i: f i (builtins.elemAt xs i)) (length xs);
    imap1 = f: xs: genList (i: f (i + 1) (builtins.elemAt xs i)) (length xs);
    nameValuePair = name: value: { inherit name value; };
    genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
    mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
    filterAttrs = pred: set:
      listToAttrs (concatMap (n: if pred n set.${n} then [ (nameValuePair n set.${n}) ] else [ ]) (attrNames set));
    recursiveUpdate = lhs: rhs:
      lhs // mapAttrs (n: r: if lhs ? ${n} && isAttrs lhs.${n} && isAttrs r then recursiveUpdate lhs.${n} r else r) rhs;
    concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);
    concatStrings = concatStringsSep "";
    hasPrefix = prefix: s: substring 0 (builtins.stringLength prefix) s == prefix;
    hasSuffix = suffix: s:
      let
        ls = builtins.stringLength s;
        lx = builtins.stringLength suffix;
      in
      ls >= lx && substring (ls - lx) lx s == suffix;
    removePrefix = prefix: s:
      if hasPrefix prefix s then substring (builtins.stringLength prefix) (-1) s else s;
    escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    escapeShellArgs = concatMapStringsSep " " escapeShellArg;
    isDerivation = x: isAttrs x && (x.type or null) == "derivation";
    makeBinPath = pkgs: concatMapStringsSep ":" (p: "${p}/bin") pkgs;
    getExe' = pkg: name: "${pkg}/bin/${name}";
    getExe = pkg: getExe' pkg (pkg.meta.mainProgram or pkg.pname or pkg.name);
    importJSON = path: builtins.fromJSON (builtins.readFile path);
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    # Sources are never copied here: evaluation must not write to the store.
    cleanSource = src: src;
    cleanSourceWith = { src, filter ? (_: _: true), name ? null }: src;
    licenses.mit = { spdxId = "MIT"; shortName = "mit"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    maintainers = { };

    # ---- option declarations ----------------------------------------------------------------
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
    mdDoc = x: x;
    isOption = x: isAttrs x && (x._type or null) == "option";
    showOption = loc: concatStringsSep "." loc;

    # ---- definition properties ---------------------------------------------------------------
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkVMOverride = mkOverride 10;
    mkOrder = priority: content: { _type = "order"; inherit priority content; };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;
    defaultOverridePriority = 100;
    defaultOrderPriority = 1000;

    # Attribute-set level: turn `mkIf c { a = x; }` into `{ a = mkIf c x; }` without forcing `c`.
    pushDownProperties = cfg:
      if (cfg._type or null) == "merge" then concatMap pushDownProperties cfg.contents
      else if (cfg._type or null) == "if" then
        map (mapAttrs (_: mkIf cfg.condition)) (pushDownProperties cfg.content)
      else if (cfg._type or null) == "override" then
        map (mapAttrs (_: mkOverride cfg.priority)) (pushDownProperties cfg.content)
      else [ cfg ];

    # Value level: expand mkMerge, evaluate mkIf.
    dischargeProperties = def:
      if (def._type or null) == "merge" then concatMap dischargeProperties def.contents
      else if (def._type or null) == "if" then
        (if isBool def.condition then
          (if def.condition then dischargeProperties def.content else [ ])
        else throw "mkIf called with a non-Boolean condition")
      else [ def ];

    # Merge the definitions [{ file, value }] of one option of type `type` at `loc`.
    mergeDefinitions = loc: type: defs:
      let
        discharged = concatMap (d: map (v: { inherit (d) file; value = v; }) (dischargeProperties d.value)) defs;
        prio = d: if (d.value._type or null) == "override" then d.value.priority else defaultOverridePriority;
        highest = foldl' (p: d: if prio d < p then prio d else p) 9999 discharged;
        strip = d: if (d.value._type or null) == "override" then { inherit (d) file; value = d.value.content; } else d;
        winners = map strip (filter (d: prio d == highest) discharged);
        order = d: if (d.value._type or null) == "order" then d.value.priority else defaultOrderPriority;
        sorted = map (d: if (d.value._type or null) == "order" then { inherit (d) file; value = d.value.content; } else d)
          (sort (a: b: order a < order b) winners);
        bad = filter (d: !(type.check d.value)) sorted;
      in
      {
        isDefined = sorted != [ ];
        value =
          if bad != [ ] then
            throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition in `${(head bad).file}': ${showValue (head bad).value}"
          else type.merge loc sorted;
      };

    showValue = v:
      if isString v || isInt v || isBool v || isFloat v || v == null then toJSON v
      else if isAttrs v then "{ ${concatStringsSep " " (map (n: "${n} = ...;") (attrNames v))} }"
      else typeOf v;

    mergeEqualOption = loc: defs:
      let first = head defs; in
      foldl'
        (val: d:
          if d.value != val then
            throw "The option `${showOption loc}' has conflicting definition values: ${showValue val} in `${first.file}' and ${showValue d.value} in `${d.file}'."
          else val)
        first.value
        defs;

    mergeDefaultOption = loc: defs:
      let vs = map (d: d.value) defs; in
      if length vs == 1 then head vs
      else if all isList vs then concatMap (v: v) vs
      else if all isAttrs vs then foldl' (a: b: a // b) { } vs
      else if all isBool vs then any (v: v) vs
      else mergeEqualOption loc defs;

    # ---- types -------------------------------------------------------------------------------
    mkOptionType = { name, description ? name, check ? (_: true), merge ? mergeDefaultOption, ... }@attrs:
      attrs // { _type = "option-type"; inherit name description check merge; };

    types = rec {
      unspecified = mkOptionType { name = "unspecified"; };
      raw = mkOptionType { name = "raw"; merge = mergeEqualOption; };
      anything = mkOptionType {
        name = "anything";
        merge = loc: defs:
          let vs = map (d: d.value) defs; in
          if all isAttrs vs && !(any isDerivation vs) then (attrsOf anything).merge loc defs
          else mergeEqualOption loc defs;
      };
      bool = mkOptionType { name = "bool"; description = "boolean"; check = isBool; merge = mergeEqualOption; };
      int = mkOptionType { name = "int"; description = "signed integer"; check = isInt; merge = mergeEqualOption; };
      float = mkOptionType { name = "float"; description = "floating point number"; check = isFloat; merge = mergeEqualOption; };
      number = either int float;
      addCheck = t: extra: t // { check = x: t.check x && extra x; };
      ints = {
        between = lo: hi: addCheck int (x: x >= lo && x <= hi) // { description = "integer between ${toString lo} and ${toString hi} (both inclusive)"; };
        unsigned = addCheck int (x: x >= 0) // { description = "unsigned integer, meaning >=0"; };
        positive = addCheck int (x: x > 0) // { description = "positive integer, meaning >0"; };
        u16 = ints.between 0 65535;
      };
      port = ints.u16;
      str = mkOptionType { name = "str"; description = "string"; check = isString; merge = mergeEqualOption; };
      nonEmptyStr = addCheck str (s: match "[[:space:]]*" s == null) // { description = "non-empty string"; };
      strMatching = pattern: addCheck str (s: match pattern s != null) // { description = "string matching the pattern ${pattern}"; };
      lines = mkOptionType {
        name = "lines";
        description = "strings concatenated with \"\\n\"";
        check = isString;
        merge = loc: defs: concatStringsSep "\n" (map (d: d.value) defs);
      };
      path = mkOptionType {
        name = "path";
        check = x: isPath x || (isString x && substring 0 1 x == "/") || (isAttrs x && x ? outPath);
        merge = mergeEqualOption;
      };
      package = mkOptionType {
        name = "package";
        check = x: isDerivation x || (isString x && hasPrefix "/nix/store/" x);
        merge = mergeEqualOption;
      };
      enum = values: mkOptionType {
        name = "enum";
        description = "one of ${concatMapStringsSep ", " toJSON values}";
        check = v: elem v values;
        merge = mergeEqualOption;
      };
      nullOr = t: mkOptionType {
        name = "nullOr";
        description = "null or ${t.description}";
        check = x: x == null || t.check x;
        merge = loc: defs:
          let nulls = filter (d: d.value == null) defs; in
          if length nulls == length defs then null
          else if nulls != [ ] then throw "The option `${showOption loc}' is defined both null and not null."
          else t.merge loc defs;
      };
      listOf = t: mkOptionType {
        name = "listOf";
        description = "list of ${t.description}";
        check = isList;
        merge = loc: defs:
          map (x: x.value) (filter (x: x.isDefined) (concatLists (imap1
            (n: d: imap1 (m: v: mergeDefinitions (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) t [{ inherit (d) file; value = v; }]) d.value)
            defs)));
      };
      nonEmptyListOf = t: addCheck (listOf t) (l: l != [ ]) // { description = "non-empty list of ${t.description}"; };
      attrsOf = t: mkOptionType {
        name = "attrsOf";
        description = "attribute set of ${t.description}";
        check = isAttrs;
        merge = loc: defs:
          let
            names = unique (concatMap (d: attrNames d.value) defs);
            merged = n: mergeDefinitions (loc ++ [ n ]) t
              (concatMap (d: if d.value ? ${n} then [{ inherit (d) file; value = d.value.${n}; }] else [ ]) defs);
          in
          mapAttrs (_: m: m.value) (filterAttrs (_: m: m.isDefined) (genAttrs names merged));
      };
      attrs = mkOptionType { name = "attrs"; description = "attribute set"; check = isAttrs; merge = loc: foldl' (a: d: a // d.value) { }; };
      either = a: b: mkOptionType {
        name = "either";
        description = "${a.description} or ${b.description}";
        check = x: a.check x || b.check x;
        merge = loc: defs:
          let vs = map (d: d.value) defs; in
          if all a.check vs then a.merge loc defs
          else if all b.check vs then b.merge loc defs
          else mergeEqualOption loc defs;
      };
      oneOf = ts: foldl' either (head ts) (tail ts);
      submoduleWith = { modules, specialArgs ? { } }: mkOptionType {
        name = "submodule";
        description = "submodule";
        check = x: isAttrs x || isFunction x || isPath x;
        merge = loc: defs:
          (evalModules {
            modules = modules ++ map (d: if isAttrs d.value then { _file = d.file; config = d.value; } else d.value) defs;
            specialArgs = specialArgs // { name = last loc; };
            prefix = loc;
          }).config;
      };
      submodule = m: submoduleWith { modules = toList m; };
    };

    # ---- evaluation --------------------------------------------------------------------------
    evalModules = { modules, specialArgs ? { }, prefix ? [ ] }:
      let
        args = specialArgs // { inherit lib config options; };
        load = file: m:
          let
            f = if isPath m || isString m then import m else m;
            file' = if isPath m || isString m then toString m else file;
            v = if isFunction f then f (intersectAttrs (functionArgs f) args) else f;
            structured = v ? options || v ? config;
            self = {
              _file = v._file or file';
              imports = v.imports or [ ];
              options = v.options or { };
              config = if structured then v.config or { } else removeAttrs v [ "imports" "_file" "meta" "key" ];
            };
          in
          [ self ] ++ concatMap (load self._file) self.imports;
        collected = concatMap (load "<unknown-file>") modules;

        mergeDecls = a: b:
          a // mapAttrs
            (n: bv:
              if !(a ? ${n}) then bv
              else if isOption a.${n} || isOption bv then throw "The option `${showOption (prefix ++ [ n ])}' is declared more than once."
              else mergeDecls a.${n} bv)
            b;
        options = foldl' mergeDecls { } (map (m: m.options) collected);

        evalOption = loc: opt: defs:
          let
            type = opt.type or types.unspecified;
            withDefault = defs ++ optional (opt ? default) { file = "default of ${showOption loc}"; value = mkOptionDefault opt.default; };
            merged = mergeDefinitions loc type withDefault;
            value = if merged.isDefined then merged.value else throw "The option `${showOption loc}' is used but not defined.";
          in
          if opt ? apply then opt.apply value else value;

        evalTree = loc: decls: defs:
          let
            pushed = concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDownProperties d.value)) defs;
            notAttrs = filter (d: !(isAttrs d.value)) pushed;
            unknown = filter (d: d.names != [ ]) (map (d: { inherit (d) file; names = filter (n: !(decls ? ${n})) (attrNames d.value); }) pushed);
            sub = n: concatMap (d: if d.value ? ${n} then [{ inherit (d) file; value = d.value.${n}; }] else [ ]) pushed;
          in
          if notAttrs != [ ] then throw "The option set `${showOption loc}' is defined as a non-attribute-set value in `${(head notAttrs).file}'."
          else if unknown != [ ] then
            throw "The option `${showOption (loc ++ [ (head (head unknown).names) ])}' does not exist. Definition in `${(head unknown).file}'."
          else mapAttrs (n: decl: if isOption decl then evalOption (loc ++ [ n ]) decl (sub n) else evalTree (loc ++ [ n ]) decl (sub n)) decls;

        config = evalTree prefix options (map (m: { file = m._file; value = m.config; }) collected);
      in
      { inherit config options; };
  };
in
lib

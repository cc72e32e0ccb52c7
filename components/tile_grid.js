// A whole grid of thumbnails as one element: the tiles arrive as data, and selecting, revealing, opening and
// loading more happen here in the browser. The server hears about them as events ("open", "select", "favourite",
// "use", "more") and never holds an element, listener or binding per tile.
//
// Two variants:
// - "gallery": each tile is a button that opens the image (its accessible name is the prompt), with badges, and a
//   checkbox while selecting; clicking a tile while selecting toggles it.
// - "results": the studio's results, each with Favourite, Download original and (optionally) "use these
//   parameters" buttons, and sensitive images covered until clicked.
export default {
  template: `
    <div class="r-tile-grid">
      <div :class="gridClass" :role="label ? 'list' : undefined" :aria-label="label || undefined">
        <figure
          v-for="tile in items"
          :key="tile.id"
          :role="label ? 'listitem' : undefined"
          :class="['r-tile', {
            'r-tile--hidden': tile.sensitive && !revealed[tile.id],
            'r-tile--selected': choosing && chosen[tile.id],
          }]"
          :style="{ aspectRatio: tile.width + ' / ' + tile.height }"
          :data-id="tile.id"
        >
          <img class="r-tile-img" :src="'/media/thumbnails/' + tile.id" :alt="tile.alt || ''" loading="lazy"
               decoding="async" />
          <template v-if="variant === 'gallery'">
            <button type="button" class="r-tile-open" :aria-label="tile.label" @click="opened(tile)"></button>
            <div class="r-tile-badges">
              <i v-if="tile.favourite" class="q-icon notranslate material-icons" role="img"
                 aria-label="Favourite">favorite</i>
              <span v-if="tile.expiry" class="r-expiry">{{ tile.expiry }}</span>
            </div>
            <q-checkbox v-if="choosing" class="r-tile-check" dense :model-value="!!chosen[tile.id]"
                        aria-label="Select" @update:model-value="(value) => toggle(tile.id, value)" />
          </template>
          <template v-else>
            <q-btn v-if="tile.sensitive && !revealed[tile.id]" flat no-caps class="r-tile-cover"
                   aria-label="Show sensitive image" @click="reveal(tile.id)">
              <q-icon name="visibility_off" />
              <span>Sensitive — click to show</span>
            </q-btn>
            <figcaption class="r-tile-actions">
              <q-btn flat round dense :icon="tile.favourite ? 'favorite' : 'favorite_border'" aria-label="Favourite"
                     :aria-pressed="tile.favourite ? 'true' : 'false'" @click="favourite(tile)" />
              <q-btn flat round dense icon="download" aria-label="Download original" @click="download(tile)" />
              <q-btn v-if="usable" flat round dense icon="tune" aria-label="Use these parameters with this seed"
                     @click="$emit('use', { id: tile.id })" />
            </figcaption>
          </template>
        </figure>
      </div>
      <q-btn v-if="more" flat no-caps class="r-load-more" label="Load more" :loading="waiting" @click="askMore" />
      <div v-if="more" ref="sentinel" class="r-sentinel"></div>
    </div>
  `,
  props: {
    tiles: { type: Array, default: () => [] },
    variant: { type: String, default: "gallery" },
    label: String,
    gridClass: { type: String, default: "r-grid" },
    more: Boolean,
    usable: Boolean,
    selecting: Boolean,
    selected: { type: Array, default: () => [] },
  },
  data() {
    return {
      items: [...this.tiles], choosing: this.selecting, chosen: this.chosenFrom(this.selected), revealed: {},
      waiting: false,
    };
  },
  watch: {
    // A new list from the server (a reload): show it; the selection survives, as it does on the server.
    tiles(value) {
      this.items = [...value];
      this.waiting = false;
      this.$nextTick(this.observe);
    },
    selecting(value) {
      this.choosing = value;
    },
    selected(value) {
      this.chosen = this.chosenFrom(value);
    },
    more() {
      this.$nextTick(this.observe);
    },
  },
  mounted() {
    this.observe();
  },
  unmounted() {
    if (this.observer) this.observer.disconnect();
  },
  methods: {
    chosenFrom(ids) {
      return Object.fromEntries(ids.map((id) => [id, true]));
    },
    // Called by the server: the next page of tiles, and whether there is yet more.
    append(tiles, more) {
      this.items.push(...tiles);
      this.waiting = false;
      this.$nextTick(() => {
        this.observe();
        // The observer reports changes only: when the new tiles still leave the end in sight, ask again.
        if (more && this.nearEnd()) this.askMore();
      });
    },
    // Called by the server: change one tile (a favourite set in the detail dialog, say).
    patch(id, changes) {
      const index = this.items.findIndex((tile) => tile.id === id);
      if (index >= 0) this.items[index] = { ...this.items[index], ...changes };
    },
    // Called by the server: selecting switched on or off (the tiles stay as they are).
    setSelecting(value, ids) {
      this.choosing = value;
      this.chosen = this.chosenFrom(ids);
    },
    clearSelection() {
      this.chosen = {};
    },
    opened(tile) {
      if (this.choosing) this.toggle(tile.id, !this.chosen[tile.id]);
      else this.$emit("open", { id: tile.id });
    },
    toggle(id, value) {
      const chosen = { ...this.chosen };
      if (value) chosen[id] = true;
      else delete chosen[id];
      this.chosen = chosen;
      this.$emit("select", { ids: Object.keys(chosen) });
    },
    reveal(id) {
      this.revealed = { ...this.revealed, [id]: true };
    },
    favourite(tile) {
      // Shown at once; the server confirms (or puts it back) with patch().
      this.patch(tile.id, { favourite: !tile.favourite });
      this.$emit("favourite", { id: tile.id, value: !tile.favourite });
    },
    download(tile) {
      const anchor = document.createElement("a");
      anchor.href = "/media/images/" + tile.id;
      anchor.download = "";
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
    },
    askMore() {
      if (this.waiting || !this.more) return;
      this.waiting = true;
      this.$emit("more");
    },
    nearEnd() {
      const sentinel = this.$refs.sentinel;
      return !!sentinel && sentinel.getBoundingClientRect().top < window.innerHeight + 800;
    },
    observe() {
      if (!this.observer) {
        this.observer = new IntersectionObserver((entries) => {
          if (entries.some((entry) => entry.isIntersecting)) this.askMore();
        }, { rootMargin: "800px" });
      }
      this.observer.disconnect();
      if (this.$refs.sentinel) this.observer.observe(this.$refs.sentinel);
    },
  },
};
